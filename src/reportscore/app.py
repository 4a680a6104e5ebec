"""``create_app(settings)``: the FastAPI app. Engine, model and runner are built in the lifespan, not at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from reportscore import __version__
from reportscore.api.auth import (
    AUTH_RESPONSES,
    MONITORING,
    AuthenticateBeforeBody,
    Authenticator,
    open_document,
    requires,
)
from reportscore.api.deps import AppState
from reportscore.api.errors import install_error_handlers
from reportscore.api.fastpath import FastPath
from reportscore.api.middleware import AccessLog, BodySizeLimit
from reportscore.api.routes import drift as drift_routes
from reportscore.api.routes import health, models, moderation, tasks
from reportscore.api.routes import keys as keys_routes
from reportscore.api.routes import monitoring as monitoring_routes
from reportscore.api.routes import quality as quality_routes
from reportscore.callbacks.dispatcher import CallbackDispatcher
from reportscore.gc_tuning import tune_gc
from reportscore.jobs.cache import TaskCache
from reportscore.jobs.notifications import LocalNotifier, RedisSubscriber
from reportscore.jobs.service import JobsService
from reportscore.moderation.reasons import ReasonExplainer
from reportscore.monitoring.logs import flush_logs
from reportscore.monitoring.service import Monitoring
from reportscore.quality.rollback import RollbackGuard
from reportscore.retention.maintenance import Maintenance
from reportscore.runners.base import Runner
from reportscore.runners.celery_app import create_celery_app
from reportscore.runners.celery_runner import CeleryRunner, Reconciler
from reportscore.runners.inprocess import InProcessRunner
from reportscore.scoring.batching import MicroBatcher
from reportscore.scoring.registration import ensure_champion
from reportscore.scoring.registry import ChampionWatcher, ModelRegistry, formats_with
from reportscore.security import keys
from reportscore.security.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from reportscore.settings import Settings
from reportscore.shadow.scorer import scorer_from_settings
from reportscore.storage import migrate
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter

log = logging.getLogger(__name__)

DESCRIPTION = """
Scores user-generated abuse reports so human moderators see the most urgent first.

`POST /predict` (or `/submit`) stores a batch durably and answers `202` with a `task_id` at once;
`GET /task/{task_id}` returns the scores when they are ready (`?wait=` long-polls).
"""


class ReportscoreApp(FastAPI):
    """The FastAPI app, with the hot routes' common case answered right in front of its router
    (:mod:`reportscore.api.fastpath`), and an OpenAPI document that declares the API key only while keys are
    enforced."""

    fast_path: FastPath | None = None
    """The fast-path layer, once the middleware stack is built (on the first request)."""
    fast_path_settings: Settings | None = None
    """Set to put the fast path in front of the router."""
    _open_document: dict[str, Any] | None = None

    def setup(self) -> None:
        super().setup()
        if self.openapi_url:
            # FastAPI's document route always answers the same document: this one answers the current auth mode's.
            self.router.routes = [r for r in self.router.routes if getattr(r, "path", None) != self.openapi_url]
            self.add_route(self.openapi_url, self._openapi_json, include_in_schema=False)

    def openapi_document(self, *, keys_required: bool) -> dict[str, Any]:
        """The OpenAPI document: protected operations declare the API key, or (while the service runs open) none
        does. ``openapi()`` is the first."""
        if keys_required:
            return self.openapi()
        if self._open_document is None:
            self._open_document = open_document(self.openapi())
        return self._open_document

    async def _openapi_json(self, request: Request) -> JSONResponse:
        authenticator: Authenticator | None = getattr(self.state, "auth", None)  # set by the lifespan
        runs_open = authenticator is not None and await authenticator.is_open()
        return JSONResponse(self.openapi_document(keys_required=not runs_open))

    def build_middleware_stack(self) -> ASGIApp:
        """The framework's stack (error handlers, the app's middleware), with the fast path as the layer right
        around the router: everything the app adds runs for a fast-path request too."""
        stack = super().build_middleware_stack()
        if self.fast_path_settings is None:
            return stack
        layer: Any = stack
        while getattr(layer, "app", None) is not self.router:
            layer = layer.app  # every layer of the stack keeps the next one in ``app``
        routes = {getattr(r, "path", ""): r for r in iter_route_contexts(self.router.routes)}
        self.fast_path = FastPath(self.router, settings=self.fast_path_settings, routes=routes)
        layer.app = self.fast_path
        return stack


def create_app(settings: Settings | None = None) -> ReportscoreApp:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database.from_settings(settings)
        if db.migrates_at_start:
            await run_in_threadpool(migrate.upgrade_to_head, db)
            await run_in_threadpool(lambda: ensure_champion(db=db, settings=settings))
        elif not await run_in_threadpool(migrate.is_at_head, db):
            raise RuntimeError("the database is not at the latest migration: run `reportscore migrate` first")
        await run_in_threadpool(lambda: keys.ensure_bootstrap_key(db=db, settings=settings))
        registry = await run_in_threadpool(ModelRegistry.from_settings, settings, db)
        watcher = ChampionWatcher(
            registry,
            db,
            name=settings.model_name,
            threads=settings.model_threads,
            interval_s=settings.model_refresh_s,
        )
        notifier = LocalNotifier()
        committer = GroupCommitter(db)
        # Shadows write through the group committer where one writer does every write (embedded SQLite).
        shadows = scorer_from_settings(settings, db, write=committer.run_sync if db.single_process else None)
        tasks_cache = TaskCache()
        runner: Runner
        reconciler: Reconciler | None = None
        subscriber: RedisSubscriber | None = None
        if settings.mode == "embedded":
            runner = InProcessRunner(
                db=db,
                registry=registry,
                notifier=notifier,
                threads=settings.worker_threads,
                max_pending=settings.max_pending_jobs,
                batch_max_reports=settings.batch_max_reports,
                max_attempts=settings.max_attempts,
                batch_wait_ms=settings.batch_wait_ms,
                committer=committer,
                cache=tasks_cache,
                shadows=shadows,
            )
        else:
            redis_url = settings.effective_redis_url
            if redis_url is not None:
                subscriber = RedisSubscriber(
                    redis_url,
                    prefix=settings.redis_prefix,
                    local=notifier,
                    tls=settings.redis_tls_options(redis_url),
                    cache=tasks_cache,
                )
            notifier.reliable_source = subscriber
            celery_runner = CeleryRunner(
                db=db,
                celery_app=create_celery_app(settings, publisher=True),
                settings=settings,
                cache=tasks_cache,
                subscriber=subscriber,
            )
            runner = celery_runner
            reconciler = Reconciler(db=db, runner=celery_runner, settings=settings)
        batcher = MicroBatcher(registry, max_reports=settings.batch_max_reports, max_wait_ms=settings.batch_wait_ms)
        state = AppState(
            settings=settings,
            db=db,
            registry=registry,
            runner=runner,
            notifier=notifier,
            committer=committer,
            batcher=batcher,
            explainer=ReasonExplainer(
                registry=registry,
                db=db,
                # Explanations use the booster's own contributions: compiling its trees there would be wasted work.
                formats=formats_with(
                    settings.extra_model_formats, trust_pickle=settings.trust_pickle, compile_trees=False
                ),
                threads=settings.model_threads,
            ),
            tasks=tasks_cache,
            jobs=JobsService(
                settings=settings,
                db=db,
                runner=runner,
                notifier=notifier,
                committer=committer,
                batcher=batcher,
                tasks=tasks_cache,
                subscriber=subscriber,
                shadows=shadows,
            ),
            subscriber=subscriber,
        )
        app.state.rs = state
        limiter = _rate_limiter(settings)
        app.state.auth = Authenticator(db=db, settings=settings, limiter=limiter)
        if not await app.state.auth.keys_exist():
            if not app.state.auth.allow_open:
                log.error(
                    "no API key exists and the service is not bound to loopback: every protected route answers 401"
                )
            elif settings.insecure:
                log.warning(
                    "INSECURE: serving without API keys on a non-loopback address; create one with "
                    "`reportscore keys create` (docs/security.md)",
                    extra={"host": settings.host},
                )
        monitoring = Monitoring(settings=settings, db=db, registry=registry)
        app.state.monitoring = monitoring
        dispatcher: CallbackDispatcher | None = None
        if settings.callbacks_enabled:
            # Every API process delivers callbacks; in embedded mode it is the only process, so leases left by a
            # killed predecessor are released at once instead of running out.
            dispatcher = CallbackDispatcher(db=db, settings=settings, release_leases_at_start=db.single_process)
        committer.start()
        watcher.start()
        shadows.start()
        await batcher.start()
        await runner.start()
        if subscriber is not None:
            await subscriber.start()
        if reconciler is not None:
            reconciler.start()
        await monitoring.start()
        if dispatcher is not None:
            await dispatcher.start()
        maintenance = Maintenance(db=db, settings=settings)
        maintenance.start()
        rollback_guard = RollbackGuard(db=db, settings=settings) if settings.auto_rollback else None
        if rollback_guard is not None:
            rollback_guard.start()
        tune_gc()  # the heap built at start leaves the collector's reach (gc_tuning)
        state.ready = True
        model = registry.current
        log.info(
            "service ready",
            extra={"mode": settings.mode, "model_name": model.name, "model_version": model.version},
        )
        try:
            yield
        finally:
            state.ready = False
            log.info("shutting down: draining in-flight work", extra={"pending": runner.pending()})
            await run_in_threadpool(maintenance.stop)
            if rollback_guard is not None:
                await run_in_threadpool(rollback_guard.stop)
            if reconciler is not None:
                await run_in_threadpool(reconciler.stop)
            if subscriber is not None:
                await subscriber.stop()
            await runner.stop(drain_s=settings.shutdown_drain_s)
            if dispatcher is not None:
                await dispatcher.stop(drain_s=settings.shutdown_drain_s)
            await batcher.stop()
            await monitoring.stop()
            await limiter.close()
            await run_in_threadpool(watcher.stop)
            await run_in_threadpool(shadows.stop)
            await run_in_threadpool(committer.stop)
            db.dispose()
            log.info("shutdown complete")
            flush_logs()  # uvicorn re-raises SIGTERM after this, which skips exit handlers

    app = ReportscoreApp(
        title="reportscore",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(tasks.build_router(settings), responses=AUTH_RESPONSES)
    app.include_router(health.router)
    app.include_router(drift_routes.router, responses=AUTH_RESPONSES)  # before /models/{version}
    app.include_router(quality_routes.router, responses=AUTH_RESPONSES)  # before /models/{version}
    app.include_router(models.router, responses=AUTH_RESPONSES)
    app.include_router(moderation.router, responses=AUTH_RESPONSES)
    app.include_router(keys_routes.router, responses=AUTH_RESPONSES)
    app.include_router(
        monitoring_routes.router,
        dependencies=[requires(MONITORING)] if settings.protect_monitoring else [],
        responses=AUTH_RESPONSES if settings.protect_monitoring else None,
    )

    install_error_handlers(app)
    app.add_middleware(AuthenticateBeforeBody)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLog)
    if settings.fast_path:
        app.fast_path_settings = settings
    return app


def _rate_limiter(settings: Settings) -> RateLimiter:
    """Shared through Redis in distributed mode (when there is a Redis), per process otherwise."""
    redis_url = settings.effective_redis_url
    if settings.mode == "distributed" and redis_url is not None:
        return RedisRateLimiter(redis_url, prefix=settings.redis_prefix)
    if settings.mode == "distributed":
        log.warning("no Redis (REPORTSCORE_REDIS_URL): per-key rate limits are counted per API process")
    return MemoryRateLimiter()
