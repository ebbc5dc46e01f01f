"""Storage: PostgreSQL (asyncpg) and SQLite stores behind small protocols, and schema migrations.

Each component that stores something puts its migrations in a module of :mod:`tradepulse.storage.schema`
(exposing ``MIGRATIONS``); :func:`~tradepulse.storage.migrations.migrate_postgres` and
:func:`~tradepulse.storage.migrations.migrate_sqlite` find and apply them in order, once.
"""

from tradepulse.config import Settings
from tradepulse.storage.ledger_store import LedgerStore


def make_ledger_store(settings: Settings) -> LedgerStore:
    """Return the ledger store ``settings.database.backend`` names (not opened yet)."""
    if settings.database.backend == "postgres":
        from tradepulse.storage.ledger_postgres import PostgresLedgerStore

        return PostgresLedgerStore(settings.database)
    from tradepulse.storage.ledger_sqlite import SqliteLedgerStore

    return SqliteLedgerStore(settings.database.sqlite_path)
