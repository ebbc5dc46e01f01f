"""Storage: PostgreSQL (asyncpg) and SQLite stores behind small protocols, and schema migrations.

Each component that stores something puts its migrations in a module of :mod:`tradepulse.storage.schema`
(exposing ``MIGRATIONS``); :func:`~tradepulse.storage.migrations.migrate_postgres` and
:func:`~tradepulse.storage.migrations.migrate_sqlite` find and apply them in order, once.
"""
