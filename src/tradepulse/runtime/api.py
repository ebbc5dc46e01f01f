"""The API inside ``tradepulse run``: uvicorn serving the app in the runtime's own event loop, on its bus.

The component opens the API services over the runtime's bus (so signals, orders and reports are the ones the
embedded platform produces) and its SQLite file, creates an ADMIN key for the session (or stores the one
``api.admin_key`` gives), and shows the URL and the key on the panel and in the summary. The session key is
revoked when the runtime stops. A busy port is reported on the panel; the rest of the platform runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sqlite3
import sys
from collections.abc import Generator

import uvicorn

from tradepulse.api.app import create_app
from tradepulse.api.services import Services, open_services
from tradepulse.runtime.component import RuntimeContext
from tradepulse.storage.keys import KeyStoreError

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the runtime owns SIGINT/SIGTERM and stops the server itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiComponent:
    """Serve the HTTP API on ``api.host``:``api.port`` (``tradepulse run``)."""

    name = "api"

    def __init__(self) -> None:
        self.url = ""
        self.token = ""
        self.problem = ""
        self._key_id = ""
        self._stack = contextlib.AsyncExitStack()
        self._services: Services | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, ctx: RuntimeContext) -> None:
        cfg = ctx.settings.api
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((cfg.host, cfg.port))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            self.problem = f"port {cfg.port} is in use; the API is off (set api.port)"
            log.warning("API: %s", self.problem)
            return
        try:
            self._services = services = await self._stack.enter_async_context(open_services(ctx.settings, bus=ctx.bus))
            key, self.token = await services.keys.create(
                name="tradepulse run session", account_id="default", scope="admin", token=cfg.admin_key or None
            )
            self._key_id = key.key_id
            host, port = sock.getsockname()[:2]
            self.url = f"http://{host}:{port}"
            config = uvicorn.Config(
                create_app(services),
                lifespan="off",
                log_level="warning",
                access_log=False,
                loop="none",
                http="httptools",
            )
            self._server = server = _Server(config)
            self._task = ctx.spawn(server.serve(sockets=[sock]), name="api-server")
            # shown once, on the terminal (never logged): the panel and the summary show only the key id
            revoked = "" if cfg.admin_key else " (revoked when this run stops)"
            print(f"API on {self.url} - admin key for this session{revoked}: {self.token}", file=sys.stderr)
        except BaseException:
            sock.close()
            await self._stack.aclose()
            raise

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True  # finish in-flight requests, close connections and the socket
            await asyncio.wait({self._task}, timeout=10)
        if self._services is not None and self._key_id and not self._services.settings.api.admin_key:
            try:
                await self._services.keys.revoke(self._key_id)
            except (OSError, KeyStoreError, sqlite3.Error) as exc:
                log.warning("API: could not revoke the session key (%s)", exc)
        await self._stack.aclose()

    def panel_rows(self) -> list[tuple[str, str]]:
        if self.problem:
            return [("status", self.problem)]
        rows = [("url", self.url), ("admin key id", self._key_id)]
        if self._services is not None:
            rows.append(("signals tracked", f"{len(self._services.signals.latest):,}"))
        return rows
