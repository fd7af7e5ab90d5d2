"""Real servers on loopback: gunicorn as the Procfile runs it, gateway worker, a free port, waiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .constants import AGENT_SECRET, ENV_PREFIXES, NO_SETTINGS, ROOT, TOKEN


def child_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a gateway process a test starts: this one's without the gateway's settings, and with
    the tests' empty operator file; then ``extra``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    return {**inherited, "GATEWAY_CONFIG_FILE": str(NO_SETTINGS), **(extra or {})}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """A real gunicorn serving ``gateway.wsgi:app`` on loopback, configured as the Procfile does (``config``: another
    settings file; ``threads``: threads per worker, which makes them gthread workers)."""

    def __init__(
        self,
        tmp_path: Path,
        workers: int = 2,
        env: dict | None = None,
        preload: bool = True,
        db_url: str | None = None,
        name: str = "gunicorn",
        config: bool | str = True,
        threads: int = 1,
    ):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_url = db_url or f"sqlite:///{tmp_path / 'live.db'}"
        self.log = tmp_path / f"{name}.log"
        full_env = child_environ(
            {
                "TWILIO_AUTH_TOKEN": TOKEN,
                "DATABASE_URL": self.db_url,
                "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"{name}-metrics"),
                **(env or {}),
            }
        )
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "gateway.wsgi:app"]
                + (
                    ["--config", config if isinstance(config, str) else "python:gateway.gunicorn_conf"]
                    if config
                    else []
                )
                + ["--bind", f"127.0.0.1:{self.port}"]
                + ["--workers", str(workers), "--timeout", "60"]
                + (["--threads", str(threads)] if threads > 1 else [])  # gunicorn's gthread workers
                + (["--preload"] if preload else []),
                cwd=ROOT,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() takes the workers too
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("gunicorn did not start:\n" + self.log.read_text()) from None
                time.sleep(0.1)

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def kill(self) -> None:
        """kill -9 the master and every worker at once, as a crashed machine would stop."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def worker(db_url: str, agent_url: str, tmp_path: Path, name: str, **extra: str) -> subprocess.Popen:
    """A real ``gateway worker`` process delivering to ``agent_url``; its output goes to ``<name>.log``."""
    env = child_environ(
        {
            "DATABASE_URL": db_url,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "GATEWAY_INSTANCE_PATH": str(tmp_path / "instance"),
            "GATEWAY_AGENT_URL": agent_url,
            "GATEWAY_AGENT_SECRET": AGENT_SECRET,
            "GATEWAY_AGENT_BACKOFF_SECONDS": "0.05",
            "GATEWAY_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "worker", "--interval", "0.05"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
