"""``tradepulse api``: serve the app with uvicorn or granian, one or several worker processes.

Each worker builds the app itself (:func:`tradepulse.api.app.app_factory`) from the settings, which the launcher
hands over through the environment (``TRADEPULSE_*`` variables and ``TRADEPULSE_CONFIG``), and opens its own
services in the app's lifespan. The launcher also points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory, so
that ``/metrics`` in any worker reports every worker's samples.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradepulse.api.metrics import MULTIPROC_ENV
from tradepulse.config import CONFIG_ENV, ENV_PREFIX, Settings, load_settings

FACTORY = "tradepulse.api.app:app_factory"


def service_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Return the settings of an API worker: service-mode defaults (Redis, PostgreSQL), then file and env."""
    return load_settings(env=env, service=True)


def export_overrides(config: Path | None, overrides: Mapping[str, Any]) -> None:
    """Put the command line's settings in the environment, where every worker process reads them."""
    if config is not None:
        os.environ[CONFIG_ENV] = str(config)
    for dotted, value in overrides.items():
        if value is not None:
            os.environ[ENV_PREFIX + dotted.replace(".", "_").upper()] = str(value)


def serve(settings: Settings) -> None:
    """Serve the API with ``settings.api.server`` and ``settings.api.workers`` until interrupted."""
    api = settings.api
    metrics_dir = tempfile.mkdtemp(prefix="tradepulse-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir
    try:
        if api.server == "granian":
            from granian.constants import Interfaces, Loops
            from granian.server import Server

            Server(
                FACTORY,
                address=api.host,
                port=api.port,
                interface=Interfaces.ASGI,
                workers=api.workers,
                loop=Loops.uvloop,
                factory=True,
                log_access=False,
                websockets=True,
            ).serve()
        else:
            import uvicorn

            uvicorn.run(
                FACTORY,
                factory=True,
                host=api.host,
                port=api.port,
                workers=api.workers,
                loop="uvloop",
                http="httptools",
                lifespan="on",
                access_log=False,
                log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=10,
            )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


__all__ = ["FACTORY", "export_overrides", "serve", "service_settings"]
