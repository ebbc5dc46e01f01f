"""A simulated venue's durable journal, so that the venue survives a crash of the process hosting it.

A simulated venue lives inside the engine process. Without a journal, killing that process would also wipe the
venue, and reconciliation after a restart would have nothing to reconcile with. With it, the venue writes what
it did (orders accepted or refused, fills, cancels, expiries, stop triggers) *before* it reports it, and
replays the journal on start; so after a crash the venue knows exactly what it executed, and the engine can
book every fill it had not booked yet, by client order id.

Records are length-prefixed msgpack. Each batch is one ``write`` on an append-only file descriptor: a process
crash never loses a record the venue reported (the kernel has it); with ``fsync`` a power loss does not either.
A torn record at the end (the process died inside a ``write``) was never reported, and is cut off on replay.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import msgspec

from tradepulse.domain import Fill, Order, OrderStatus, RejectReason

_LEN = struct.Struct("<I")


class JEpoch(msgspec.Struct, frozen=True, tag="E"):
    """The first record: names this venue incarnation, so ids it makes never repeat an earlier journal's."""

    epoch: str


class JAccepted(msgspec.Struct, frozen=True, tag="A"):
    order: Order
    seq: int
    venue_order_id: str


class JRefused(msgspec.Struct, frozen=True, tag="R"):
    order: Order
    reason: RejectReason
    message: str


class JFill(msgspec.Struct, frozen=True, tag="F"):
    fill: Fill


class JClosed(msgspec.Struct, frozen=True, tag="C"):
    client_order_id: str
    status: OrderStatus
    message: str


class JTriggered(msgspec.Struct, frozen=True, tag="T"):
    client_order_id: str
    seq: int


Record = JEpoch | JAccepted | JRefused | JFill | JClosed | JTriggered


class VenueJournal:
    """Append-only record file. :meth:`replay` reads it back; :meth:`write` appends a batch."""

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Record)
        self._fd: int | None = None
        self.records = 0

    def replay(self) -> Iterator[Record]:
        """Yield every complete record; truncate a torn tail left by a crash mid-write."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        pos = 0
        while pos + _LEN.size <= len(data):
            (size,) = _LEN.unpack_from(data, pos)
            end = pos + _LEN.size + size
            if end > len(data):
                break
            yield self._decoder.decode(data[pos + _LEN.size : end])
            self.records += 1
            pos = end
        if pos != len(data):
            with self.path.open("r+b") as f:
                f.truncate(pos)

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, records: list[Record]) -> None:
        """Append ``records`` with one write (and an fsync when configured)."""
        if not records:
            return
        if self._fd is None:
            raise RuntimeError(f"journal {self.path} is not open")
        encode = self._encoder.encode
        parts = []
        for record in records:
            body = encode(record)
            parts.append(_LEN.pack(len(body)))
            parts.append(body)
        data = b"".join(parts)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(self._fd)
        self.records += len(records)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


__all__ = ["JAccepted", "JClosed", "JEpoch", "JFill", "JRefused", "JTriggered", "Record", "VenueJournal"]
