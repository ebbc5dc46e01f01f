"""A metronome for the event loop: calls back at ``start + k * interval`` on the monotonic clock, to the
microsecond, without a thread.

Why: the open-loop load generators send each order at its due time and measure it from then, so they must wake
close to every due time, and cheaply: they share the cores with what they measure. The loop's own timers are
millisecond-granular (uvloop's are libuv's), and a pacing thread pays a thread switch, GIL hand-offs and a
cross-thread wake-up of the loop per due time (measured alone, with nothing sent: about 60 us of CPU per order at
1,000/s on the 2-core benchmark machine, against about 30 us for this; in the order benchmark's generator it
saves 1.6 context switches and a write per order). On Linux the metronome is a periodic timerfd on
CLOCK_MONOTONIC (the clock of ``time.monotonic_ns``) that the loop's own epoll watches: one 8-byte read per
wake. Elsewhere it falls back to the loop's timer, up to a millisecond late (which a generator that measures from
intended times counts as latency).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _linux_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    return libc if hasattr(libc, "timerfd_create") else None


_LIBC = _linux_libc()


def _timespec(ns: int) -> _Timespec:
    return _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)


class Metronome:
    """Calls ``tick()`` on the event loop at ``start_ns + k * interval_ns`` (``time.monotonic_ns`` values), from
    creation until :meth:`close` (it is a context manager).

    Ticks are not queued: when the loop was busy past several, ``tick`` is called once, and the caller works out
    from the clock what has come due. ``timerfd=False`` forces the loop-timer fallback (tests).
    """

    def __init__(self, start_ns: int, interval_ns: int, tick: Callable[[], None], *, timerfd: bool = True) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        self.start_ns = start_ns
        self.interval_ns = interval_ns
        self._tick = tick
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        self._timer: asyncio.TimerHandle | None = None
        if not timerfd or _LIBC is None:
            self._schedule()
            return
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        spec = _Itimerspec(_timespec(interval_ns), _timespec(max(start_ns, 1)))  # 0 would disarm it
        if _LIBC.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, "timerfd_settime failed")
        self._fd = fd
        self._loop.add_reader(fd, self._expired)

    @property
    def precise(self) -> bool:
        """Whether the ticks come from a timerfd (else from the loop's millisecond timer)."""
        return self._fd >= 0

    def _expired(self) -> None:
        try:
            os.read(self._fd, 8)  # the number of expirations since the last read; reading clears readiness
        except BlockingIOError:
            return
        self._tick()

    def _schedule(self) -> None:
        since = time.monotonic_ns() - self.start_ns
        ahead = -since if since < 0 else self.interval_ns - since % self.interval_ns
        self._timer = self._loop.call_later(ahead / 1e9, self._fallback_tick)

    def _fallback_tick(self) -> None:
        self._schedule()
        self._tick()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __enter__(self) -> Metronome:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
