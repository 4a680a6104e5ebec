"""``reportscore keys …``: API keys (create, list, revoke, generate)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from reportscore.cli.common import HELP, ensure_schema, err, fail, load_settings, wide_console

keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke; generate one for REPORTSCORE_BOOTSTRAP_API_KEY.", **HELP
)


@contextmanager
def _keys_db() -> Iterator[Any]:
    """The database for a ``keys`` command (SQLite is migrated; PostgreSQL must be); a key error ends it."""
    settings = load_settings()
    from reportscore.security.keys import KeyError_
    from reportscore.storage.db import Database

    db = Database.from_settings(settings)
    try:
        ensure_schema(db)
        yield db
    except KeyError_ as exc:
        fail(str(exc))
    finally:
        db.dispose()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Whose key: its tasks and results are visible to this tenant only.")],
    name: Annotated[str, typer.Option(help="What the key is for, e.g. moderation-prod.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: submit, read, feedback, admin, metrics.")],
    rate: Annotated[float | None, typer.Option(help="Requests per second allowed (default: unlimited).")] = None,
    burst: Annotated[int | None, typer.Option(help="Requests at once above the rate (default: the rate).")] = None,
) -> None:
    """Create an API key and print it on stdout. It is shown this once: only its hash is stored."""
    from reportscore.security.keys import create_key

    with _keys_db() as db:
        key, view = create_key(
            db=db,
            tenant=tenant,
            name=name,
            scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            rate=rate,
            burst=burst,
        )
    typer.echo(key)
    limit = f", {view.rate:g}/s burst {view.burst}" if view.rate is not None else ""
    err.print(
        f"created key {view.prefix} for tenant {view.tenant} ({', '.join(view.scopes)}{limit}). "
        "It is shown only now: send it as the X-API-Key header; revoke with "
        f"`reportscore keys revoke {view.prefix}`.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    include_revoked: Annotated[bool, typer.Option("--all", help="Also list revoked keys.")] = False,
) -> None:
    """List keys (prefix, tenant, scopes, rate); never their secrets."""
    from rich.table import Table

    from reportscore.security.keys import list_keys

    with _keys_db() as db:
        views = list_keys(db=db, tenant=tenant, include_revoked=include_revoked)
    table = Table("prefix", "tenant", "name", "scopes", "rate/s", "burst", "created", "revoked")
    for v in views:
        table.add_row(
            v.prefix,
            v.tenant,
            v.name,
            ",".join(v.scopes),
            "" if v.rate is None else f"{v.rate:g}",
            "" if v.burst is None else str(v.burst),
            v.created_at.isoformat(timespec="seconds"),
            "" if v.revoked_at is None else v.revoked_at.isoformat(timespec="seconds"),
        )
    wide_console().print(table)


@keys_app.command("revoke")
def keys_revoke(prefix: Annotated[str, typer.Argument(help="The key's prefix (from `keys list`).")]) -> None:
    """Revoke a key: every API process refuses it within REPORTSCORE_AUTH_CACHE_S."""
    from reportscore.security.keys import revoke_key

    with _keys_db() as db:
        revoked = revoke_key(db=db, prefix=prefix)
    if not revoked:
        fail(f"no active API key with prefix {prefix} (see `reportscore keys list --all`)")
    err.print(f"revoked {prefix}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random key without storing it (a value for REPORTSCORE_BOOTSTRAP_API_KEY)."""
    from reportscore.security.keys import generate

    typer.echo(generate())
