"""Text fields a store and a JSON answer can hold: the one string type of every free-text field clients send."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AfterValidator, Field

NO_NUL: Final = r"^[^\x00]*$"
"""No NUL character: PostgreSQL's text type refuses it (a 500 on insert, not the client's 422)."""


def _encodable(value: str) -> str:
    """JSON can carry a lone surrogate (``"\\ud800"``) that no UTF-8 store or answer can hold: reject it.

    pydantic-core already refuses one in any string with a constraint (``string_unicode``); this keeps the rule
    independent of that detail."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (a lone surrogate)") from None
    return value


Text = Annotated[str, Field(pattern=NO_NUL), AfterValidator(_encodable)]
"""A string without NUL and without lone surrogates (both a clean 422); give lengths with ``Field`` where used."""
