"""API keys: ``rsk_<prefix>_<secret>``. Shown once at creation; the store keeps only the prefix and a sha256.

The prefix (12 hex characters) is the key's public id: a request's key is found by it, ``keys revoke`` takes it,
logs may show it. The secret is 32 random bytes (256 bits), so a plain sha256 is enough (no slow hash needed:
nobody can guess a 256-bit secret from its hash) and the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.exc import IntegrityError

from reportscore.settings import Settings, placeholder_secret_problem
from reportscore.storage.db import Database
from reportscore.storage.models import ApiKey
from reportscore.storage.models.base import utcnow
from reportscore.storage.repositories import keys as repo

SCOPES: Final[tuple[str, ...]] = ("submit", "read", "feedback", "admin", "metrics")
"""Every scope a key may hold (docs/security.md says which routes each one opens)."""

MAX_RATE: Final = 1_000_000
"""Requests per second a key may be limited to: beyond this it is as good as unlimited (and its default burst still
fits the store)."""

MAX_BURST: Final = 2**31 - 1

PREFIX_PATTERN: Final = r"^[0-9a-f]{12}$"
"""A key's public id, as ``keys list`` shows it."""

KEY_PATTERN: Final = re.compile(r"^rsk_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{32,128})$")
GENERATE_HINT: Final = "`reportscore keys generate` prints a new one"


class KeyError_(ValueError):  # noqa: N801  # not the builtin KeyError
    """A key request that cannot be honoured; the message says why."""


@dataclass(frozen=True, slots=True)
class KeyView:
    """A stored key as the CLI and the admin route show it: everything but the secret and its hash."""

    prefix: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    rate: float | None
    burst: int | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the authenticator needs to check a presented key."""

    prefix: str
    tenant: str
    key_hash: str
    scopes: frozenset[str]
    rate: float | None
    burst: int | None
    revoked: bool


def generate() -> str:
    """A new random key (not stored)."""
    return f"rsk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def parse_prefix(key: str) -> str | None:
    """The key's prefix, or None when it is not shaped like a reportscore key."""
    match = KEY_PATTERN.match(key)
    return match["prefix"] if match else None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(key), stored_hash)


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise KeyError_(f"scopes must be a non-empty subset of {', '.join(SCOPES)}; unknown: {', '.join(unknown)}")
    return [s for s in SCOPES if s in scopes]


def default_burst(rate: float | None) -> int | None:
    """One second's worth of requests, at least one."""
    return None if rate is None else max(1, round(rate))


def _store(
    db: Database, *, key: str, tenant: str, name: str, scopes: list[str], rate: float | None, burst: int | None
) -> KeyView:
    prefix = parse_prefix(key)
    if prefix is None:
        raise KeyError_(f"not a reportscore API key (rsk_<12 hex>_<secret>): {GENERATE_HINT}")
    if not tenant or len(tenant) > 128 or not name or len(name) > 128:
        raise KeyError_("tenant and name must be 1 to 128 characters")
    if rate is not None and not 0 < rate <= MAX_RATE:
        raise KeyError_(f"rate must be a positive number of requests per second, at most {MAX_RATE:,}")
    if burst is not None and (rate is None or not 1 <= burst <= MAX_BURST):
        raise KeyError_(f"burst needs a rate and must be 1 to {MAX_BURST:,}")
    scopes = check_scopes(scopes)
    burst = burst if burst is not None else default_burst(rate)
    at = utcnow()
    with db.write() as session:
        repo.insert_key(
            session,
            tenant=tenant,
            name=name,
            prefix=prefix,
            key_hash=hash_key(key),
            scopes=scopes,
            rate=rate,
            burst=burst,
            at=at,
        )
    return KeyView(prefix, tenant, name, tuple(scopes), rate, burst, at, None)


def create_key(
    *, db: Database, tenant: str, name: str, scopes: list[str], rate: float | None = None, burst: int | None = None
) -> tuple[str, KeyView]:
    """Create and store a new key; returns the key (its only appearance) and its view."""
    key = generate()
    return key, _store(db, key=key, tenant=tenant, name=name, scopes=scopes, rate=rate, burst=burst)


def _view(row: ApiKey) -> KeyView:
    return KeyView(
        row.prefix, row.tenant, row.name, tuple(row.scopes), row.rate, row.burst, row.created_at, row.revoked_at
    )


def list_keys(*, db: Database, tenant: str | None = None, include_revoked: bool = False) -> list[KeyView]:
    with db.read() as session:
        return [_view(row) for row in repo.list_keys(session, tenant=tenant, include_revoked=include_revoked)]


def revoke_key(*, db: Database, prefix: str) -> bool:
    """Revoke an active key by its prefix; False when there is none. Processes stop accepting it within
    REPORTSCORE_AUTH_CACHE_S."""
    with db.write() as session:
        return repo.revoke(session, prefix=prefix, at=utcnow())


def any_key_created(*, db: Database) -> bool:
    """Whether any key was ever created, revoked or not: from then on the service never runs open again."""
    with db.read() as session:
        return repo.any_key(session)


def lookup(*, db: Database, prefix: str) -> StoredKey | None:
    with db.read() as session:
        row = repo.get_by_prefix(session, prefix=prefix)
        if row is None:
            return None
        return StoredKey(
            prefix=row.prefix,
            tenant=row.tenant,
            key_hash=row.hash,
            scopes=frozenset(row.scopes),
            rate=row.rate,
            burst=row.burst,
            revoked=row.revoked_at is not None,
        )


def ensure_bootstrap_key(*, db: Database, settings: Settings) -> bool:
    """Store REPORTSCORE_BOOTSTRAP_API_KEY if it is set and not stored yet; True when it was added.

    Idempotent and safe to run from several processes at once. A bootstrap key that was revoked stays revoked
    (rotate by setting a new one).
    """
    if settings.bootstrap_api_key is None:
        return False
    key = settings.bootstrap_api_key.get_secret_value()
    if reason := placeholder_secret_problem(key):
        raise KeyError_(f"REPORTSCORE_BOOTSTRAP_API_KEY {reason}: {GENERATE_HINT}")
    prefix = parse_prefix(key)
    if prefix is None:
        raise KeyError_(f"REPORTSCORE_BOOTSTRAP_API_KEY is not a reportscore API key: {GENERATE_HINT}")
    existing = lookup(db=db, prefix=prefix)
    if existing is None:
        try:
            _store(
                db,
                key=key,
                tenant=settings.bootstrap_api_key_tenant,
                name="bootstrap",
                scopes=list(settings.bootstrap_api_key_scopes),
                rate=None,
                burst=None,
            )
        except IntegrityError:  # another process stored it first
            existing = lookup(db=db, prefix=prefix)
        else:
            return True
    if existing is not None and not matches(key, existing.key_hash):
        raise KeyError_(f"REPORTSCORE_BOOTSTRAP_API_KEY has the prefix {prefix} of another stored key: {GENERATE_HINT}")
    return False
