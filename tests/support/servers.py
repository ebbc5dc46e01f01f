"""Find the Redis and PostgreSQL servers the tests use, or start private ones from the installed binaries.

Tests talk to ``TRADEPULSE_REDIS_URL`` and ``TRADEPULSE_DATABASE_URL`` (defaults: the local servers). When
nothing answers there, a private server is started on a free port from the installed ``redis-server`` /
``initdb`` + ``pg_ctl`` binaries, and stopped at the end of the session; when the binaries are missing too, the
run stops at once with a message saying how to get them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://127.0.0.1:5432/test"

HOW_TO_GET_THEM = (
    "install and start them (Debian: `apt-get install redis-server postgresql`), or point "
    "TRADEPULSE_REDIS_URL / TRADEPULSE_DATABASE_URL at running servers"
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Return whether a Redis server at ``url`` answers PING."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def postgres_answers(url: str, timeout: float = 1.0) -> bool:
    """Return whether something accepts TCP connections at the PostgreSQL ``url``'s host and port."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), timeout):
            return True
    except OSError:
        return False


@dataclass
class RedisServer:
    """A private redis-server on a free port; stop it with :meth:`stop` (or use :func:`redis_server`)."""

    port: int
    directory: Path
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket(self) -> Path:
        """The server's Unix socket (it listens on both)."""
        return self.directory / "redis.sock"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server is not installed; {HOW_TO_GET_THEM}")
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
            "--maxmemory-policy",
            "noeviction",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
        ]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not redis_answers(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """Kill the server with SIGKILL (a crash), and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def redis_server(appendonly: bool = False) -> Iterator[RedisServer]:
    """Run a private redis-server on a free port for the duration of the block."""
    with tempfile.TemporaryDirectory(prefix="tp-redis-") as tmp:
        server = RedisServer(free_port(), Path(tmp), appendonly)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster on a free port, created with initdb (as the postgres user when root)."""

    port: int
    directory: Path
    started: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        found = shutil.which(name)
        if found:
            return found
        for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
            return str(candidate)
        raise RuntimeError(f"{name} (PostgreSQL server binaries) is not installed; {HOW_TO_GET_THEM}")

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", "postgres", "--", *args]

    def start(self) -> None:
        data = self.directory / "data"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.directory, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            self._as_owner([self._bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            self._as_owner(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(self.directory / "pg.log"),
                    "-w",
                    "-o",
                    f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.started = True

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                self._as_owner([self._bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop"]),
                check=False,
                capture_output=True,
            )
            self.started = False
