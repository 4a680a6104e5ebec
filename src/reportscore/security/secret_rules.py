"""The rules every password, key and URL secret of a deployment follows: no template placeholders, and redacted
wherever the configuration is shown."""

from __future__ import annotations

_PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme"})
HOW_TO_CHOOSE_ONE = (
    'Set a random one, for example the output of `python3 -c "import secrets; print(secrets.token_urlsafe(24))"`'
)


def placeholder_secret_problem(secret: str) -> str | None:
    """Why ``secret`` must not be deployed (empty, or a template's ``change-me``/``CHANGE_ME``); None when it may.

    The one rule for every password and key that a deployment template leaves to the operator.
    """
    if not secret.strip():
        return "is empty"
    if secret.strip().lower().replace("_", "-") in _PLACEHOLDER_SECRETS:
        return f"is the template's placeholder {secret.strip()!r}"
    return None


def url_password_problem(url: str) -> str | None:
    """``placeholder_secret_problem`` of a URL's password; None when the URL has none (or cannot be parsed)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except ArgumentError:
        return None
    return None if password is None else placeholder_secret_problem(str(password))


_SECRET_QUERY_PARAMETERS = frozenset({"password", "passwd", "pass", "secret", "token", "ssl_keyfile_password"})


def valid_allow_entry(entry: str) -> bool:
    import ipaddress
    import re

    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", entry) is not None
    return True


def redact_url(url: str) -> str:
    """The URL with its password, and any password-like query parameter, replaced by ``***``; ``***`` when it
    cannot be parsed (it might be a bare secret)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "***"
    secret_keys = [key for key in parsed.query if key.lower() in _SECRET_QUERY_PARAMETERS]
    if secret_keys:
        parsed = parsed.update_query_dict({key: "***" for key in secret_keys})
    return parsed.render_as_string(hide_password=True)
