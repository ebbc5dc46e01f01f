"""The HTTP API (Litestar): see :mod:`tradepulse.api.app`."""
