"""A host of its own for a test, on a network link the test can cut: a Linux network namespace.

The namespace reaches this host over a veth pair; :class:`Relay` forwards
connections that arrive on this host's end to a server (PostgreSQL). Cutting
the link takes this host's end down: from then on packets are dropped and
nothing answers, not even a reset, as when a network partitions or a machine
vanishes. Needs root and iproute2 (installed from Debian's packages when
missing); :func:`available` says why not where it cannot be had.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Sequence

from .postgres import apt_install


def available() -> str | None:
    """None if this process can make network namespaces, else why not (a container may deny root them)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        apt_install("iproute2")
    try:
        Namespace().remove()
    except subprocess.CalledProcessError as exc:
        return f"cannot make a network namespace here: {exc.stderr.strip() or exc}"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Namespace:
    """A network namespace linked to this host: this host is ``host_address``, the namespace ``address``."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name, self.outside, inside = f"gwtest-{tag}", f"gwt{tag}a", f"gwt{tag}b"
        subnet = int(tag, 16) % 250 + 1
        self.host_address, self.address = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", self.name)
            _ip("addr", "add", f"{self.host_address}/30", "dev", self.outside)
            _ip("link", "set", self.outside, "up")
            _ip("netns", "exec", self.name, "ip", "addr", "add", f"{self.address}/30", "dev", inside)
            _ip("netns", "exec", self.name, "ip", "link", "set", inside, "up")
            _ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def popen(self, args: Sequence[str], **kwargs) -> subprocess.Popen:
        """A process inside the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kwargs)

    def cut(self) -> None:
        """Drop everything on the link from now on, silently."""
        _ip("link", "set", self.outside, "down")

    def restore(self) -> None:
        _ip("link", "set", self.outside, "up")
        _ip("addr", "replace", f"{self.host_address}/30", "dev", self.outside)

    def remove(self) -> None:
        """The namespace and its link (deleting one end of a veth pair deletes the other)."""
        subprocess.run(["ip", "link", "del", self.outside], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Relay:
    """Forwards each connection to ``listen_host`` (on a free port) to ``target`` (a TCP address, or a Unix
    socket's path), both ways, until either side closes."""

    def __init__(self, listen_host: str, target: tuple[str, int] | str) -> None:
        self.target = target
        self.listener = socket.create_server((listen_host, 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            try:
                if isinstance(self.target, str):
                    server = socket.socket(socket.AF_UNIX)
                    server.connect(self.target)
                else:
                    server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        for end in self.sockets:
            end.close()
