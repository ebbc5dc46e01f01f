"""SQLite connections for the embedded mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating) a SQLite database tuned for one writer and fast commits.

    WAL lets readers run beside the writer; ``synchronous=NORMAL`` in WAL mode survives a process crash (a power
    loss may lose the last commits, never corrupt the file). Transactions are explicit (``isolation_level=None``).
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn
