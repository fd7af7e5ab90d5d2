"""The gateway as a user installs it: a wheel built from the sources, installed with its dependencies into a
new virtualenv outside the checkout, run from a folder of its own. It passes only when no file of the checkout
is read: every process of the installed gateway records each file it opens (a Python audit hook), and none may
be under the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .support.commands import STOP_TWIML, wait_healthy
from .support.constants import ROOT, SENDER, TOKEN, TWILIO_NUMBER
from .support.servers import free_port
from .support.webhooks import post_webhook, sms_params

pytestmark = pytest.mark.slow

# Installed as the new virtualenv's sitecustomize: every Python process of it (the forked workers too) appends
# each path it opens to the file GATEWAY_TEST_OPENED names.
AUDIT_HOOK = """
import os, sys
_target = os.environ.get("GATEWAY_TEST_OPENED")
if _target:
    _fd = os.open(_target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _opened(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            os.write(_fd, (os.path.abspath(path) + "\\n").encode("utf-8", "backslashreplace"))

    sys.addaudithook(_opened)
"""


def sources(destination: Path) -> Path:
    """The files a fresh clone has (tracked, or new and not ignored), copied: the wheel is built from these."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new virtualenv with the gateway's wheel and its dependencies, and nothing of the checkout."""
    if shutil.which("git") is None:
        pytest.skip("needs git to list the sources")
    work = tmp_path_factory.mktemp("package")
    tree = sources(work / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(tree)],
        check=True,
        cwd=work,
        timeout=600,
    )
    (wheel,) = (work / "dist").glob("twilio_sms_gateway-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=900
    )
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "sitecustomize.py").write_text(AUDIT_HOOK)
    return venv


def environment(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: the new virtualenv first on the PATH, no setting of the tests', nothing on PYTHONPATH."""
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")}
    return {
        **keep,
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "GATEWAY_TEST_OPENED": str(home / "opened.txt"),
        **extra,
    }


def test_a_wheel_installed_on_its_own_runs_without_the_checkout(installed, tmp_path):
    """`gateway init-db`, gunicorn on the documented entry with the packaged settings, a signed webhook round
    trip and a read of the record, from a folder of the user's own: the defaults come from the package, the
    records go to that folder's instance/ (never into the virtualenv), and no file of the checkout is opened."""
    home = tmp_path / "deployment"
    home.mkdir()
    env = environment(installed, home, TWILIO_AUTH_TOKEN=TOKEN)
    where = subprocess.run(
        ["python", "-c", "import gateway; print(gateway.__file__)"], cwd=home, env=env, capture_output=True, text=True
    )
    assert where.returncode == 0 and where.stdout.startswith(str(installed)), where

    ready = subprocess.run(["gateway", "init-db"], cwd=home, env=env, capture_output=True, text=True, timeout=120)
    assert ready.returncode == 0, ready.stderr
    assert ready.stdout.strip().startswith(f"Database ready: the SQLite database {home / 'instance' / 'gateway.db'}")

    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["gunicorn", "gateway.wsgi:app", "--config", "python:gateway.gunicorn_conf", "--preload"]
            + ["--workers", "2", "--bind", f"127.0.0.1:{port}"],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(port, server, log, 60)
        status, body = post_webhook(f"http://127.0.0.1:{port}", sms_params("STOP", sender=SENDER, to=TWILIO_NUMBER))
        assert (status, body.strip()) == (200, STOP_TWIML)
    finally:
        server.terminate()
        server.wait(30)
    started = log.read_text()
    assert "Traceback" not in started and "Worker failed to boot" not in started, started
    assert f"instance folder {home / 'instance'}" in started  # where the records are, said at start-up

    listed = subprocess.run(
        ["gateway", "optouts", "list", "--format", "json"], cwd=home, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert [row["number"] for row in json.loads(listed.stdout)] == [SENDER]
    assert not list(installed.rglob("*.db")), "a database inside the virtualenv"

    opened = set((home / "opened.txt").read_text().splitlines())
    assert any(path.endswith("gateway/settings/defaults/gateway.toml") for path in opened)  # the hook saw the config
    checkout = [path for path in opened if path == str(ROOT) or path.startswith(str(ROOT) + os.sep)]
    assert checkout == [], f"files of the checkout were read: {sorted(checkout)[:10]}"
