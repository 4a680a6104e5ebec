"""Validation errors of bodies that are tagged unions, located as if the union were not there.

pydantic puts the tag of the union branch it validated into each error's ``loc`` (``[body, 0, "by:id", "outcome"]``);
clients know nothing of our tags, so routes whose bodies are unions drop it (``[body, 0, "outcome"]``) with the
route class made here (the pattern of FastAPI's "custom APIRoute class" documentation).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


class UntaggedUnionRoute(APIRoute):
    """A route whose validation errors leave out the union tags in ``union_tags``."""

    union_tags: ClassVar[frozenset[str]] = frozenset()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        tags = self.union_tags

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError([untagged(e, tags) for e in exc.errors()], body=exc.body) from None

        return handle


def untagged(error: Any, tags: frozenset[str]) -> Any:
    """The error without the first tag in its ``loc`` (the branch's tag comes before the branch's own fields, so a
    client's key that happens to equal a tag, further on, stays)."""
    loc = list(error.get("loc", ()))
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in tags:
            return {**error, "loc": (*loc[:i], *loc[i + 1 :])}
    return error


def untagged_union_route(*tags: str) -> type[APIRoute]:
    """A route class that leaves these union tags out of error locations (``APIRouter(route_class=...)``)."""
    return type("UntaggedUnionRoute", (UntaggedUnionRoute,), {"union_tags": frozenset(tags)})
