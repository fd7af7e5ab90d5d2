"""wsgi.py under gunicorn as people start it: every start-up refusal stops the whole server with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .support.constants import ROOT, TOKEN
from .support.servers import child_environ, free_port

MISSING_TOKEN = (
    "gateway: refusing to start: TWILIO_AUTH_TOKEN is not set: without it the gateway cannot verify that "
    "requests come from Twilio (for local development use `gateway serve` or `make run`)"
)


def _env(tmp_path, **extra) -> dict:
    return child_environ(
        {"GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), **extra}
    )


def test_importing_wsgi_without_token_refuses_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True, env=_env(tmp_path), timeout=60
    )
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [MISSING_TOKEN]


def test_the_procfile_runs_migrations_then_gunicorn_with_preload():
    procfile = (ROOT / "Procfile").read_text().splitlines()
    assert procfile[0] == "release: gateway init-db"  # migrations before the new version serves
    assert procfile[1].startswith("web: gunicorn gateway.wsgi:app --config python:gateway.gunicorn_conf --preload ")


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
@pytest.mark.parametrize("config", [True, False], ids=["config", "no-config"])
@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({}, "TWILIO_AUTH_TOKEN is not set"),
        ({"TWILIO_AUTH_TOKEN": TOKEN, "GATEWAY_TRUST_PROXY": "lots"}, "GATEWAY_TRUST_PROXY: expected a whole number"),
        (
            {"TWILIO_AUTH_TOKEN": TOKEN, "DATABASE_URL": "postgresql://gw:secret-pw@127.0.0.1:{port}/gateway"},
            "DATABASE_URL: cannot open or migrate the PostgreSQL database gateway on 127.0.0.1",
        ),
        ({"TWILIO_AUTH_TOKEN": TOKEN, "DYNO": "web.1"}, "DATABASE_URL is not set: the default SQLite file"),
    ],
    ids=["no-token", "bad-setting", "database-unreachable", "sqlite-on-heroku"],
)
def test_gunicorn_stops_with_the_reason(tmp_path, preload, config, settings, reason):
    """Plain `gunicorn gateway.wsgi:app` (as most people start it) exits at once with the reason, not a restart
    loop.

    With the gateway's gunicorn config the master checks before any worker boots, so two workers are fine;
    bare gunicorn (one worker by default) is run as it comes.
    """
    command = [sys.executable, "-m", "gunicorn", "gateway.wsgi:app", "--bind", f"127.0.0.1:{free_port()}"]
    command += ["--config", "python:gateway.gunicorn_conf", "--workers", "2"] if config else []
    command += ["--preload"] if preload else []
    settings = {k: v.format(port=free_port()) for k, v in settings.items()}
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, env=_env(tmp_path, **settings)
    )
    assert result.returncode != 0
    refusals = [line for line in result.stderr.splitlines() if line.startswith("gateway: refusing to start: ")]
    assert refusals and all(line.startswith(f"gateway: refusing to start: {reason}") for line in refusals)
    assert len(refusals) == 1  # once: never again and again
    assert "Traceback" not in result.stderr and "secret-pw" not in result.stderr
