"""Per-process state of a Celery worker: engine, model, notifier and lease heartbeat, built once after fork, in the
pool child."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from reportscore.jobs.notifications import RedisPublisher
from reportscore.scoring.leases import LeaseKeeper
from reportscore.scoring.registry import ChampionWatcher, ModelRegistry
from reportscore.settings import Settings
from reportscore.shadow.scorer import ShadowScorer, scorer_from_settings
from reportscore.storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class WorkerState:
    settings: Settings
    db: Database
    registry: ModelRegistry
    publisher: RedisPublisher | None
    leases: LeaseKeeper
    shadows: ShadowScorer


_state: WorkerState | None = None
_lock = threading.Lock()


def get_state(settings: Settings) -> WorkerState:
    """The process's state, built on first use (in the pool child, so nothing is shared across a fork)."""
    global _state
    with _lock:
        if _state is None:
            db = Database.from_settings(settings)
            registry = ModelRegistry.from_settings(settings, db)
            ChampionWatcher(
                registry,
                db,
                name=settings.model_name,
                threads=settings.model_threads,
                interval_s=settings.model_refresh_s,
            ).start()
            redis_url = settings.effective_redis_url
            publisher = (
                RedisPublisher(redis_url, prefix=settings.redis_prefix, tls=settings.redis_tls_options(redis_url))
                if redis_url
                else None
            )
            leases = LeaseKeeper(db=db, lease_s=settings.lease_s, interval_s=settings.lease_renew_interval_s).start()
            shadows = scorer_from_settings(settings, db).start()
            _state = WorkerState(
                settings=settings, db=db, registry=registry, publisher=publisher, leases=leases, shadows=shadows
            )
            model = registry.current
            log.info("worker process ready", extra={"model_name": model.name, "model_version": model.version})
        return _state


def reset_state() -> None:
    """Forget the state (after fork, so a child never reuses its parent's connections)."""
    global _state
    with _lock:
        _state = None
