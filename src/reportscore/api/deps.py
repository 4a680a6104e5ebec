"""Per-process state the routes need, built in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from reportscore.jobs.cache import TaskCache
from reportscore.jobs.notifications import LocalNotifier, RedisSubscriber
from reportscore.jobs.service import JobsService
from reportscore.moderation.reasons import ReasonExplainer
from reportscore.runners.base import Runner
from reportscore.scoring.batching import MicroBatcher
from reportscore.scoring.registry import ModelRegistry
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.group_commit import GroupCommitter


@dataclass
class AppState:
    settings: Settings
    db: Database
    registry: ModelRegistry
    runner: Runner
    notifier: LocalNotifier
    committer: GroupCommitter
    batcher: MicroBatcher
    explainer: ReasonExplainer
    tasks: TaskCache
    jobs: JobsService
    """Submit, score, read and wait: what the task routes and the fast path adapt."""
    subscriber: RedisSubscriber | None = None
    """Distributed mode: this process's subscription to finish announcements (its epoch validates pending hints)."""
    ready: bool = False


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, two thread hops per request for a lookup.
    state: AppState = request.app.state.rs
    return state


State = Annotated[AppState, Depends(get_state)]


def is_json_media_type(content_type: str) -> bool:
    """A Content-Type that declares JSON: ``application/json`` or ``application/<anything>+json``, any parameters."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def require_json(request: Request) -> None:
    """Refuse a body that is not declared as JSON (415), rather than reading it as bytes and answering a 422 that
    talks about the wrong thing. Async, so FastAPI runs it on the event loop rather than in a thread."""
    content_type = request.headers.get("content-type", "")
    if not is_json_media_type(content_type):
        media_type = content_type.split(";", 1)[0].strip().lower()
        raise HTTPException(
            status_code=415, detail=f"Content-Type must be application/json, not {media_type or 'missing'!r}"
        )
