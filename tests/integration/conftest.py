from __future__ import annotations

import pytest

from tests.integration.bus_fixtures import stream, transport, transport_factory
from tests.integration.tick_store_fixtures import tick_store

__all__ = ["stream", "tick_store", "transport", "transport_factory"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
