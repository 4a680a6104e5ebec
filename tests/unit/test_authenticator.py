"""The key check reads the store once per cache period, however many requests arrive while it reads."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event

from reportscore.api.auth import Authenticator
from reportscore.security import keys
from reportscore.security.ratelimit import MemoryRateLimiter
from reportscore.settings import Settings
from reportscore.storage.db import Database


def _count_statements(db: Database, needle: str) -> list[str]:
    seen: list[str] = []

    @event.listens_for(db.read_engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if needle in statement:
            seen.append(statement)

    return seen


def test_concurrent_checks_share_one_store_read(db: Database, settings: Settings) -> None:
    key, _ = keys.create_key(db=db, tenant="t1", name="k", scopes=["read"])
    auth = Authenticator(db=db, settings=settings, limiter=MemoryRateLimiter())
    reads = _count_statements(db, "api_keys")

    async def burst() -> list[Any]:
        return await asyncio.gather(
            *(auth.keys_exist() for _ in range(50)), *(auth.authorize(key, "read") for _ in range(50))
        )

    results = asyncio.run(burst())
    assert results[:50] == [True] * 50
    assert {p.tenant for p in results[50:]} == {"t1"}
    assert len(reads) == 2  # one "does any key exist", one lookup of this key's prefix: not 100
