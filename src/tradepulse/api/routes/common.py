"""Parameter types shared by the API's routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}$"
#: an instrument symbol in a path: letters, digits and ``. _ : / -``, at most 32 characters
Symbol = Annotated[str, Parameter(pattern=SYMBOL_PATTERN, max_length=32, description="Instrument symbol.")]
#: latest time a query may name: 2100-01-01T00:00:00Z (the databases' time types end long after, but not much)
MAX_TIME_NS = 4_102_444_800_000_000_000
#: nanoseconds since the Unix epoch (UTC)
TimeNs = Annotated[int, Parameter(ge=0, le=MAX_TIME_NS, description="Nanoseconds since the Unix epoch, UTC.")]

__all__ = ["MAX_TIME_NS", "SYMBOL_PATTERN", "Symbol", "TimeNs"]
