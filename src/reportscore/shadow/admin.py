"""Start, change and stop shadows (the CLI and the HTTP API call these)."""

from __future__ import annotations

from datetime import UTC, datetime

from reportscore.scoring.registration import UnknownVersionError
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import models as models_repo
from reportscore.storage.repositories import shadow as shadow_repo
from reportscore.storage.repositories.shadow import Shadow


class ShadowLimitError(ValueError):
    """Starting this shadow would exceed ``REPORTSCORE_MAX_SHADOWS``."""


def start_shadow(
    *, db: Database, settings: Settings, version: str, fraction: float = 1.0, by: str = "cli"
) -> list[Shadow]:
    """Shadow a registered version on ``fraction`` of the reports (or change its fraction); returns the set."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    name = settings.model_name
    with db.write() as session:
        if models_repo.get_version(session, name=name, version=version) is None:
            raise UnknownVersionError(f"{name} {version} is not registered (see `reportscore models list`)")
        current = shadow_repo.list_shadows(session, name=name)
        if version not in {s.version for s in current} and len(current) >= settings.max_shadows:
            raise ShadowLimitError(
                f"{len(current)} shadows already run (REPORTSCORE_MAX_SHADOWS={settings.max_shadows}): "
                f"stop one first ({', '.join(s.version for s in current)})"
            )
        shadow_repo.upsert_shadow(session, name=name, version=version, fraction=fraction, at=datetime.now(UTC), by=by)
        return shadow_repo.list_shadows(session, name=name)


def stop_shadow(*, db: Database, settings: Settings, version: str) -> bool:
    """Stop shadowing ``version`` (its stored scores stay); False when it was not a shadow."""
    with db.write() as session:
        return shadow_repo.delete_shadow(session, name=settings.model_name, version=version)


def list_shadows(*, db: Database, settings: Settings) -> list[Shadow]:
    with db.read() as session:
        return shadow_repo.list_shadows(session, name=settings.model_name)
