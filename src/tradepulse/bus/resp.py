"""Lean Redis connections for the bus's hot commands: XADD pipelines, XACK, XREADGROUP and XREAD.

Why not redis-py for these: every order crosses Redis four or five times (submit, engine read, report, ack,
client read), and at low load each crossing is one command of its own. Profiling the engine at 1,000 orders/s
showed redis-py's per-command machinery (a pooled connection checked out and back, a retry wrapper, an
``asyncio.wait_for`` task around every socket write, stream readers under the parser) costing about twice the
client CPU of the command itself: an XADD costs ~56 us of client CPU through redis-py as the transport
configures it and ~32 us here, an XADD + XACK pipeline ~70 us against ~31 us
(``python -m benchmarks.tools.redis_hot_path``).
Everything else the transport does (groups, pending lists, claims, dead letters, the trim script) stays on
redis-py.

The protocol is RESP2, parsed by hiredis (the parser redis-py itself uses) and packed by
:func:`hiredis.pack_command`. One :class:`FastRedis` holds:

* one *shared* connection on which every non-blocking call is written at once and pipelined with whatever else
  is in flight (replies come back in order, each call's future resolves with its own replies), and
* a few *blocking* connections, one per concurrent blocking read (``XREADGROUP``/``XREAD`` with ``BLOCK``), each
  reused once its read returns.

Failures: a lost connection fails every call waiting on it with :class:`ConnectionError` (the transport maps it
to ``BusUnavailable``) and the next call reconnects. A call that does not complete within its timeout closes its
connection (its replies could no longer be matched) and raises :class:`TimeoutError`. A blocking read whose
caller is cancelled closes its connection, as redis-py does: entries Redis handed to that read stay pending
for the consumer and are redelivered. Error replies come back as :class:`hiredis.ReplyError` values in the reply
list; the caller decides what they mean.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import RedisSSLContext, SSLConnection

Command = Sequence[str | bytes | int | float]


def _pack(command: Command) -> bytes:
    # hiredis's stub types the argument as a 1-tuple; it takes any tuple of arguments
    packed: bytes = hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
    return packed


class _Pending:
    """One call's place in a connection's reply queue: the replies it expects and the future they resolve."""

    __slots__ = ("expected", "future", "replies")

    def __init__(self, expected: int, future: asyncio.Future[list[Any]]) -> None:
        self.expected = expected
        self.future = future
        self.replies: list[Any] = []


class _Connection(asyncio.Protocol):
    """One Redis connection: writes calls at once and resolves them, in order, as their replies arrive."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._pending: deque[_Pending] = deque()
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._transport is None:
            self._transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        pending = self._pending
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self._fail(ConnectionError("Redis sent a reply nobody asked for"))
                return
            head = pending[0]
            head.replies.append(reply)
            if len(head.replies) == head.expected:
                pending.popleft()
                if not head.future.done():
                    head.future.set_result(head.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"connection to Redis lost: {exc}" if exc else "connection to Redis closed")
        self.lost = error
        while self._pending:
            waiting = self._pending.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(error)
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_exception(error)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    # -- calls ----------------------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def usable(self) -> bool:
        return self.lost is None and self._transport is not None and not self._transport.is_closing()

    def send(self, payload: bytes, expected: int) -> asyncio.Future[list[Any]]:
        """Write ``payload`` (``expected`` commands) and return the future of their replies."""
        if not self.usable:
            raise self.lost or ConnectionError("connection to Redis closed")
        assert self._transport is not None
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(expected, future))
        self._transport.write(payload)
        return future

    async def writable(self) -> None:
        """Wait while the socket's send buffer is over its high-water mark (Redis is not keeping up)."""
        if self._paused:
            if self._resumed is None:
                self._resumed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._resumed)

    def _fail(self, error: BaseException) -> None:
        self.lost = error
        self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


class FastRedis:
    """Hot-path Redis calls over lean connections (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        max_blocking: int = 16,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.ssl = ssl_context
        self.db, self.username, self.password = db, username, password
        self.connect_timeout = connect_timeout
        #: most seconds a non-blocking call may take; a blocking read may take its block time on top
        self.timeout = timeout
        self.max_blocking = max_blocking
        self._shared: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._idle: list[_Connection] = []
        self._blocking = 0
        self._closed = False

    @classmethod
    def from_pool(cls, pool: aioredis.ConnectionPool) -> FastRedis:
        """Build from a redis-py pool: the same server, database, credentials and TLS settings (``rediss://``:
        the context redis-py itself would build)."""
        kwargs = pool.connection_kwargs
        context = None
        if issubclass(pool.connection_class, SSLConnection):
            context = RedisSSLContext(
                keyfile=kwargs.get("ssl_keyfile"),
                certfile=kwargs.get("ssl_certfile"),
                cert_reqs=kwargs.get("ssl_cert_reqs", "required"),
                ca_certs=kwargs.get("ssl_ca_certs"),
                ca_data=kwargs.get("ssl_ca_data"),
                check_hostname=kwargs.get("ssl_check_hostname", False),
                min_version=kwargs.get("ssl_min_version"),
                ciphers=kwargs.get("ssl_ciphers"),
            ).get()
        return cls.from_connection_kwargs(kwargs, ssl_context=context)

    @classmethod
    def from_connection_kwargs(
        cls, kwargs: Mapping[str, Any], *, timeout: float | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> FastRedis:
        """Build from a redis-py pool's ``connection_kwargs`` (the same server, database and credentials)."""
        return cls(
            host=str(kwargs.get("host", "127.0.0.1")),
            port=int(kwargs.get("port", 6379)),
            path=kwargs.get("path"),
            db=int(kwargs.get("db", 0) or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            connect_timeout=float(kwargs.get("socket_connect_timeout") or 2.0),
            timeout=float(timeout if timeout is not None else kwargs.get("socket_timeout") or 5.0),
            ssl_context=ssl_context,
        )

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            if self.path:
                transport, conn = await loop.create_unix_connection(_Connection, self.path)
            else:
                transport, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                )
            conn.connection_made(transport)  # uvloop may call it only after create_connection has returned
            setup: list[Command] = []
            if self.password:
                setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                setup.append(("SELECT", self.db))
            if setup:
                replies = await conn.send(b"".join(_pack(c) for c in setup), len(setup))
                for reply in replies:
                    if isinstance(reply, hiredis.ReplyError):
                        conn.close()
                        raise ConnectionError(f"Redis refused the connection setup: {reply}")
        return conn

    async def _shared_connection(self) -> _Connection:
        conn = self._shared
        if conn is not None and conn.usable:
            return conn
        if self._closed:
            raise ConnectionError("the Redis connection is closed")
        if self._connecting is None:  # one connect at a time; concurrent callers wait for it
            self._connecting = asyncio.get_running_loop().create_future()
            connecting = self._connecting
            try:
                conn = await self._connect()
            except BaseException as exc:
                self._connecting = None
                connecting.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
                connecting.exception()  # retrieved: the waiters (if any) re-raise it
                raise
            self._shared = conn
            self._connecting = None
            connecting.set_result(conn)
            return conn
        return await asyncio.shield(self._connecting)

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` as one pipeline on the shared connection; return their replies in order."""
        conn = await self._shared_connection()
        await conn.writable()
        payload = b"".join([_pack(c) for c in commands])
        future = conn.send(payload, len(commands))
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            conn.close()  # a late reply could no longer be matched to its call
            raise TimeoutError(f"Redis did not answer within {self.timeout} s") from None
        except asyncio.CancelledError:
            # the commands were sent; their replies still arrive in order and are dropped with this future
            future.cancel()
            raise

    def ready(self) -> _Connection | None:
        """Return the shared connection if it is up and has room to write now, else None."""
        conn = self._shared
        if conn is not None and conn.usable and not conn.paused and not self._closed:
            return conn
        return None

    def send_now(self, conn: _Connection, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Write ``commands`` on ``conn`` (from :meth:`ready`) at once; return the future of their replies. No
        timeout here: the caller closes the connection if the answer takes too long."""
        return conn.send(b"".join([_pack(c) for c in commands]), len(commands))

    async def call(self, *command: str | bytes | int | float) -> Any:
        """Run one non-blocking command on the shared connection and return its reply."""
        return (await self.execute((command,)))[0]

    async def blocking(self, commands: Sequence[Command], block_s: float) -> list[Any]:
        """Run ``commands`` as one pipeline whose last one may block up to ``block_s`` seconds (XREADGROUP/XREAD
        ... BLOCK) on a connection of its own; return their replies."""
        if self._closed:
            raise ConnectionError("the Redis connection is closed")
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.usable:
                conn = candidate
                break
        if conn is None:
            conn = await self._connect()
        self._blocking += 1
        reusable = False
        try:
            future = conn.send(b"".join([_pack(c) for c in commands]), len(commands))
            try:
                async with asyncio.timeout(block_s + self.timeout):
                    replies = await future
            except TimeoutError:
                raise TimeoutError(f"Redis did not answer a blocking read within {block_s + self.timeout} s") from None
            reusable = True
            return replies
        finally:
            self._blocking -= 1
            if reusable and conn.usable and not self._closed and len(self._idle) < self.max_blocking:
                self._idle.append(conn)
            else:
                conn.close()  # cancelled or failed mid-read: the connection may still be blocked in Redis

    async def close(self) -> None:
        self._closed = True
        connections = [*self._idle, *([self._shared] if self._shared is not None else [])]
        self._idle.clear()
        self._shared = None
        for conn in connections:
            conn.close()
        await asyncio.sleep(0)  # let the transports close


def reply_error(reply: Any) -> str | None:
    """Return the message of an error reply, or None when ``reply`` is not one."""
    return str(reply) if isinstance(reply, hiredis.ReplyError) else None


__all__ = ["FastRedis", "reply_error"]
