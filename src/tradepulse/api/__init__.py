"""The HTTP API (Litestar): see api/app.py."""
