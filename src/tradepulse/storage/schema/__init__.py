"""One module per component, each exposing ``MIGRATIONS: list[Migration]``; discovered automatically."""
