"""Schema of the API key store (see :mod:`tradepulse.storage.keys`): only a hash of each secret is kept."""

from __future__ import annotations

from tradepulse.storage.migrations import Migration


def _ddl(ns: str, text: str) -> str:
    return f"""
CREATE TABLE api_keys (
    key_id {text} PRIMARY KEY,
    name {text} NOT NULL,
    account_id {text} NOT NULL,
    scope {text} NOT NULL CHECK (scope IN ('read', 'trade', 'admin')),
    secret_sha256 {text} NOT NULL,
    created_ns {ns} NOT NULL,
    revoked_ns {ns}
);
"""


MIGRATIONS = [
    Migration("api_keys", 1, "api_keys", postgres=_ddl("bigint", "text"), sqlite=_ddl("INTEGER", "TEXT")),
]
