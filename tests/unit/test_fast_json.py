"""Bodies parsed with orjson read exactly as with ``json.loads``, including what orjson alone would reject."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from reportscore.api.fast_json import OrjsonRequest


def _parse(body: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    request = OrjsonRequest({"type": "http", "method": "POST", "headers": []}, receive)
    return asyncio.run(request.json())


@pytest.mark.parametrize(
    "body",
    [b'[{"a": 1, "b": 2.5, "c": "x\\u00e9"}]', b"[123456789012345678901234567890]", b"[1e400]", b'{"a": 1, "a": 2}'],
)
def test_same_result_as_json(body: bytes) -> None:
    assert _parse(body) == json.loads(body)


def test_nan_literal_reads_as_json_reads_it() -> None:
    assert math.isnan(_parse(b"[NaN]")[0])


def test_malformed_body_raises_the_json_error_fastapi_reports() -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        _parse(b'[{"a": 1,')
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(b'[{"a": 1,')
    assert (info.value.pos, info.value.msg) == (expected.value.pos, expected.value.msg)
