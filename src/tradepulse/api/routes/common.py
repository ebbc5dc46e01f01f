"""Parameter types shared by the API's routes."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.params import Parameter

from tradepulse.api.schemas import NO_CONTROL_CHARS

SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,31}$"
#: an instrument symbol in a path: letters, digits and ``. _ : / -``, at most 32 characters
Symbol = Annotated[str, Parameter(pattern=SYMBOL_PATTERN, max_length=32, description="Instrument symbol.")]
#: latest time a query may name: 2100-01-01T00:00:00Z (the databases' time types end long after, but not much)
MAX_TIME_NS = 4_102_444_800_000_000_000

#: a time in nanoseconds since the Unix epoch (UTC), 0 to 2100-01-01; also inside ``Annotated[TimeNs | None,
#: Parameter(...)]`` (the bounds then stay on the integer branch of the schema). ``schema_extra``: Litestar leaves
#: a falsy bound (ge=0) out of the OpenAPI schema otherwise
TimeNs = Annotated[
    int,
    Parameter(ge=0, le=MAX_TIME_NS, schema_extra={"minimum": 0}, description="Nanoseconds since the Unix epoch, UTC."),
]


def time_ns_param(description: str) -> Any:
    """Return a query Parameter for a time in nanoseconds since the Unix epoch (UTC), 0 to 2100-01-01."""
    # schema_extra: Litestar leaves a falsy bound (ge=0) out of the OpenAPI schema
    return Parameter(
        ge=0,
        le=MAX_TIME_NS,
        schema_extra={"minimum": 0},
        description=f"{description} Nanoseconds since the Unix epoch, UTC.",
    )


__all__ = ["MAX_TIME_NS", "NO_CONTROL_CHARS", "SYMBOL_PATTERN", "Symbol", "TimeNs", "time_ns_param"]
