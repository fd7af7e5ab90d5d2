"""The Makefile as a new user meets it: `make run` (server, worker, echo agent) and the interpreter it picks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.core.masking import mask_number

from .support.commands import SIMULATED_FROM, simulate_args, wait_healthy
from .support.constants import ROOT, TWILIO_NUMBER
from .support.servers import free_port

pytestmark = pytest.mark.slow


def run_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "TWILIO_", "DATABASE_URL", "PROM"))}
    env["GATEWAY_INSTANCE_PATH"] = str(tmp_path / "instance")
    return env


def make_run(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    if not (ROOT / ".venv" / ".installed-run").exists():
        pytest.skip("make run needs the virtualenv that make test builds")
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", *args],
            cwd=ROOT,
            env=run_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_make_run_shows_a_whole_round_trip(tmp_path):
    """`make run` (already installed), nothing configured: server, worker and echo agent; a simulated
    SMS reaches the agent and its reply comes back through the outbound path (printed, not sent)."""
    port = free_port()
    proc, log = make_run(
        tmp_path, "run", f"PORT={port}", f"AGENT_PORT={free_port()}", f"METRICS_DIR={tmp_path / 'metrics'}"
    )
    try:
        wait_healthy(port, proc, log, 60)
        assert f"Console:         http://127.0.0.1:{port}/console" in log.read_text()  # the banner names it
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert b'gateway_outbound_suppressed_total{account="none"} 0.0' in response.read()  # no SID yet
        simulated = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "gateway"), *simulate_args("hello there", port)],
            env=run_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert simulated.returncode == 0, simulated.stderr
        to = mask_number(SIMULATED_FROM)
        expected = f"SMS (console backend, not sent) to {to} from {TWILIO_NUMBER}: Echo: hello there"
        wait_for_line(log, expected)

        # The README's outbound example works right after make run: the development sender is configured.
        gateway = [str(ROOT / ".venv" / "bin" / "gateway")]
        key = subprocess.run(
            [*gateway, "keys", "create", "--role", "sender"], env=run_env(tmp_path), capture_output=True, text=True
        )
        assert key.returncode == 0, key.stderr
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/outbound-sms",
            data=json.dumps({"to_number": "+14155550199", "content": "Your table is ready"}).encode(),
            headers={"Authorization": f"Bearer {key.stdout.split()[0]}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            sent = json.loads(response.read())
            assert (response.status, sent["status"], sent["sender"]) == (202, "queued", TWILIO_NUMBER)
        wait_for_line(log, f"SMS (console backend, not sent) to {mask_number('+14155550199')} from {TWILIO_NUMBER}")
    finally:
        stop(proc)
    assert list((tmp_path / "metrics").glob("*.db")), "the server wrote its counters to the shared directory"
    # The first screen: the banner, then each start-up finding once (server and worker alike start), and in dev
    # what to settle before going live reads as that, naming the file to edit; the worker needs no console key.
    lines = log.read_text().splitlines()
    findings = [n for n, line in enumerate(lines) if "gateway.checkup:" in line]
    banner = next(n for n, line in enumerate(lines) if line.startswith("Console:"))
    assert findings and min(findings) > banner, lines
    help_lines = [line for line in lines if "[help-reply]" in line]
    assert len(help_lines) == 1 and "BEFORE GOING LIVE [help-reply]" in help_lines[0], help_lines
    assert "in config/keywords.toml [replies]" in help_lines[0]
    assert sum("[revoke-all]" in line for line in lines) == 1
    assert not any("FAIL [" in line for line in lines) and "GATEWAY_SECRET_KEY" not in log.read_text()


def wait_for_line(log: Path, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while text not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_a_second_make_run_keeps_the_first_ones_counters(tmp_path):
    first_port, second_port = free_port(), free_port()
    first, first_log = make_run(tmp_path, "first", f"PORT={first_port}", f"AGENT_PORT={free_port()}")
    try:
        wait_healthy(first_port, first, first_log, 60)
        second, second_log = make_run(tmp_path, "second", f"PORT={second_port}", f"AGENT_PORT={free_port()}")
        try:
            wait_healthy(second_port, second, second_log, 60)
            folders = sorted((tmp_path / "instance").glob("metrics.*"))
            assert len(folders) == 2  # one per run
            with urllib.request.urlopen(f"http://127.0.0.1:{first_port}/metrics", timeout=10) as response:
                assert response.status == 200  # the first run's counters are still there
        finally:
            stop(second)
    finally:
        stop(first)
    assert not list((tmp_path / "instance").glob("metrics.*"))  # each run cleans its own up


def test_a_taken_agent_port_stops_make_run_with_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        agent_port, port = taken.getsockname()[1], free_port()
        proc, log = make_run(tmp_path, "run", f"PORT={port}", f"AGENT_PORT={agent_port}")
        assert proc.wait(60) != 0
    output = log.read_text()
    assert f"echo agent: cannot listen on 127.0.0.1:{agent_port}: Address already in use" in output
    assert "AGENT_PORT" in output and "Traceback" not in output
    assert not list((tmp_path / "instance").glob("metrics.*"))  # nothing left behind of the run that did not start
    with pytest.raises(OSError):  # the gateway never started without the agent it would have announced
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_taken_gateway_port_stops_make_run_with_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, log = make_run(tmp_path, "run", f"PORT={port}", f"AGENT_PORT={free_port()}")
        assert proc.wait(60) != 0
    assert f"make run: port {port} is taken (the gateway's)" in log.read_text()


def _dry_run(tmp_path: Path, path: str, *args: str) -> subprocess.CompletedProcess:
    env = {**run_env(tmp_path), "PATH": path}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", f"VENV={tmp_path / 'venv'}", f"{tmp_path / 'venv'}/bin/python", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_picks_the_newest_python_311_or_newer(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("python3.11", "python3.13", "python3.12"):
        (bin_dir / name).symlink_to(os.sys.executable)
    shim = bin_dir / "python3.14"  # a pyenv shim for a version not selected: on the PATH, but it fails
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.14: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    result = _dry_run(tmp_path, f"{bin_dir}:/usr/bin:/bin")
    assert result.returncode == 0 and f"python3.13 -m venv {tmp_path / 'venv'}" in result.stdout
    chosen = _dry_run(tmp_path, f"{bin_dir}:/usr/bin:/bin", f"PYTHON={bin_dir / 'python3.11'}")
    assert f"{bin_dir / 'python3.11'} -m venv" in chosen.stdout


def test_make_says_so_when_there_is_no_python_311(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = bin_dir / "python3"
    old.write_text("#!/bin/sh\nexit 1\n")  # a python3 older than 3.11 fails the version check
    old.chmod(0o755)
    env = {**run_env(tmp_path), "PATH": str(bin_dir)}
    target = f"{tmp_path / 'venv'}/bin/python"
    result = subprocess.run(
        ["/usr/bin/make", "--no-print-directory", f"VENV={tmp_path / 'venv'}", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "make: needs Python 3.11 or newer on the PATH (or PYTHON=/path/to/python)" in result.stdout
