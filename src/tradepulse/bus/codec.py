"""msgspec codec for bus messages: msgpack on the wire, tagged by class name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

import msgspec

from tradepulse.domain import MESSAGE_TYPES, Message


class DecodeError(ValueError):
    """A payload is not a valid message of any known type."""


class Codec:
    """Encode and decode messages of the given types (default: every domain message type)."""

    __slots__ = ("_decoder", "_encoder", "types")

    def __init__(self, types: Iterable[type[Message]] = MESSAGE_TYPES) -> None:
        self.types = tuple(types)
        if not self.types:
            raise ValueError("a codec needs at least one message type")
        union: Any = self.types[0] if len(self.types) == 1 else Union[self.types]  # noqa: UP007
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(union)

    def encode(self, message: Message) -> bytes:
        """Return the msgpack encoding of ``message``."""
        return self._encoder.encode(message)

    def decode(self, payload: bytes) -> Message:
        """Return the message in ``payload`` or raise :class:`DecodeError` saying why."""
        try:
            return self._decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(str(exc)) from None


DEFAULT_CODEC = Codec()
