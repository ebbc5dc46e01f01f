"""Models: the versions in the ML registry, the promoted one, and their metrics (from each version's meta.json)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Router, get
from litestar.params import Parameter

from tradepulse.api.auth import Scope, requires
from tradepulse.api.errors import NOT_FOUND, ApiError
from tradepulse.api.schemas import ModelDetail, ModelList, ModelSummary
from tradepulse.api.services import ServicesDep
from tradepulse.ml.registry import ModelRecord, RegistryError

VersionParam = Annotated[str, Parameter(pattern=r"^v[0-9]{4,9}$", description="Model version (v0001, ...).")]


def _detail(record: ModelRecord, promoted: str | None) -> ModelDetail:
    meta = record.meta

    def table(name: str) -> dict[str, Any]:
        value = meta.get(name)
        return value if isinstance(value, dict) else {}

    seconds = meta.get("training_seconds")
    return ModelDetail(
        version=record.version,
        kind=str(meta.get("kind", "")),
        created=str(meta.get("created", "")),
        promoted=record.version == promoted,
        metrics=table("metrics"),
        params=table("params"),
        labels=table("labels"),
        validation=table("validation"),
        data=table("data"),
        training_seconds=float(seconds) if isinstance(seconds, int | float) else None,
    )


@get("/models", sync_to_thread=False, summary="Model versions")
def list_models(services: ServicesDep) -> ModelList:
    """Every model version in the registry, oldest first, and which one is promoted."""
    registry = services.registry
    try:
        promoted = registry.promoted_version()
        records = registry.list()
    except RegistryError as exc:
        raise ApiError(503, "unavailable", "the model registry is unreadable") from exc
    return ModelList(
        promoted=promoted,
        models=[
            ModelSummary(
                version=r.version,
                kind=str(r.meta.get("kind", "")),
                created=str(r.meta.get("created", "")),
                promoted=r.version == promoted,
            )
            for r in records
        ],
    )


@get(
    "/models/promoted",
    sync_to_thread=False,
    summary="The promoted model and its metrics",
    responses=NOT_FOUND,
)
def promoted_model(services: ServicesDep) -> ModelDetail:
    """The model the live signal service loads (404 if none is promoted)."""
    registry = services.registry
    try:
        record = registry.promoted()
    except RegistryError as exc:
        raise ApiError(404, "not_found", "the promoted model is missing from the registry") from exc
    if record is None:
        raise ApiError(404, "not_found", "no model is promoted (train one: tradepulse train)")
    return _detail(record, record.version)


@get("/models/{version:str}", sync_to_thread=False, summary="A model version and its metrics", responses=NOT_FOUND)
def get_model(services: ServicesDep, version: VersionParam) -> ModelDetail:
    """One model version (404 if there is no such version)."""
    registry = services.registry
    try:
        record = registry.get(version)
    except RegistryError as exc:
        raise ApiError(404, "not_found", f"no model {version}") from exc
    return _detail(record, registry.promoted_version())


router = Router(
    path="/api/v1",
    route_handlers=[list_models, promoted_model, get_model],
    guards=[requires(Scope.READ)],
    tags=["models"],
)
