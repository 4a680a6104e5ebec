"""The checks of settings that cannot work together, each with a message that says how to fix it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reportscore.security.secret_rules import (
    HOW_TO_CHOOSE_ONE,
    placeholder_secret_problem,
    url_password_problem,
    valid_allow_entry,
)

if TYPE_CHECKING:
    from reportscore.settings import Settings


class ConfigurationError(ValueError):
    """Settings that cannot work together; the message says how to fix them."""


def check_combination(settings: Settings) -> None:
    """Raise ``ConfigurationError`` for the first combination of ``settings`` that cannot work."""
    if settings.drift_psi_alert <= settings.drift_psi_warn:
        raise ConfigurationError(
            f"REPORTSCORE_DRIFT_PSI_ALERT ({settings.drift_psi_alert}) must be above REPORTSCORE_DRIFT_PSI_WARN "
            f"({settings.drift_psi_warn})"
        )
    if settings.is_sqlite and settings.api_processes > 1:
        raise ConfigurationError(
            f"api_processes={settings.api_processes} with a SQLite database: embedded mode is exactly one "
            "process (SQLite has one writer and the in-process queue lives in that process). "
            "Use REPORTSCORE_API_PROCESSES=1, or run distributed mode with "
            "REPORTSCORE_DATABASE_URL=postgresql+psycopg://... and REPORTSCORE_BROKER_URL=redis://..."
        )
    if settings.is_sqlite and settings.broker_url is not None:
        raise ConfigurationError(
            "REPORTSCORE_BROKER_URL is set but the database is SQLite: Celery workers on other processes "
            "cannot share a SQLite file safely. Set REPORTSCORE_DATABASE_URL=postgresql+psycopg://... or "
            "unset REPORTSCORE_BROKER_URL for embedded mode."
        )
    if settings.broker_url is not None and settings.task_time_limit_s >= settings.visibility_timeout_s:
        raise ConfigurationError(
            f"task_time_limit_s={settings.task_time_limit_s} must be below visibility_timeout_s="
            f"{settings.visibility_timeout_s}: otherwise the broker redelivers a task that is still running. "
            "Raise REPORTSCORE_VISIBILITY_TIMEOUT_S or lower REPORTSCORE_TASK_TIME_LIMIT_S."
        )
    if settings.score_cache_redis and settings.effective_redis_url is None:
        raise ConfigurationError(
            "REPORTSCORE_SCORE_CACHE_REDIS is on but there is no Redis: set REPORTSCORE_REDIS_URL (or a redis:// "
            "REPORTSCORE_BROKER_URL), or turn the shared score cache off."
        )
    if settings.lease_renew_interval_s * 2 > settings.lease_s:
        raise ConfigurationError(
            f"lease_renew_interval_s={settings.lease_renew_interval_s} must be at most half of lease_s="
            f"{settings.lease_s}: otherwise a single late renewal lets the lease of a job still being scored run "
            "out, and the job is claimed again. Lower REPORTSCORE_LEASE_RENEW_INTERVAL_S (about a third of "
            "the lease is usual) or raise REPORTSCORE_LEASE_S."
        )
    if settings.callbacks_enabled and settings.callback_secret is None:
        raise ConfigurationError(
            "REPORTSCORE_CALLBACKS_ENABLED=true but REPORTSCORE_CALLBACK_SECRET is not set: every callback is "
            "signed, so receivers can tell it comes from this service. Set REPORTSCORE_CALLBACK_SECRET to a "
            "random string of at least 16 characters (for example the output of `openssl rand -hex 32`), "
            "or set REPORTSCORE_CALLBACKS_ENABLED=false."
        )
    if settings.callback_secret is not None and len(settings.callback_secret.get_secret_value()) < 16:
        raise ConfigurationError(
            "REPORTSCORE_CALLBACK_SECRET is shorter than 16 characters: use a random string of at least 16 "
            "(for example the output of `openssl rand -hex 32`)."
        )
    if settings.database_url and (reason := url_password_problem(settings.database_url)):
        raise ConfigurationError(
            f"REPORTSCORE_DATABASE_URL: the database password {reason}. {HOW_TO_CHOOSE_ONE} and put it in the URL "
            "(postgresql+psycopg://user:<password>@host:5432/db), or leave the password out of the URL entirely "
            "to let the server's other authentication methods apply."
        )
    if settings.flower_basic_auth is not None:
        _user, sep, password = settings.flower_basic_auth.get_secret_value().partition(":")
        if not sep:
            raise ConfigurationError("REPORTSCORE_FLOWER_BASIC_AUTH must look like user:password")
        if reason := placeholder_secret_problem(password):
            raise ConfigurationError(
                f"REPORTSCORE_FLOWER_BASIC_AUTH: the password {reason}. {HOW_TO_CHOOSE_ONE} "
                "(REPORTSCORE_FLOWER_BASIC_AUTH=user:<password>)."
            )
    for entry in settings.callback_allow_private_networks:
        if not valid_allow_entry(entry):
            raise ConfigurationError(
                f"REPORTSCORE_CALLBACK_ALLOW_PRIVATE_NETWORKS: {entry!r} is neither a CIDR (10.0.0.0/8, "
                "::1/128) nor a host name"
            )
