"""Hostile request bodies against a real ``reportscore serve`` process (uvicorn, HTTP over loopback, raw sockets
where a client library would refuse to misbehave).

Every one gets a clear 4xx JSON error, never a 500, a traceback or SQL in the body; nothing is stored; and the
service still answers /health/ready and scores a normal batch afterwards.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.servers import ServiceProcess

pytestmark = pytest.mark.e2e

MAX_BODY = 256 * 1024
"""The service's REPORTSCORE_MAX_BODY_BYTES here: small, so oversized bodies are cheap to send."""

REPORT: dict[str, Any] = {
    "abuse_type": "MSG",
    "report_text_len": 120,
    "profile_rating": 0.45,
    "popularity": 3,
    "lifetime_matches_created": 12,
}

LEAKS = ("Traceback", 'File "', "sqlite", "SELECT ", "INSERT ", "psycopg", "sqlalchemy", "Error:")


@dataclass
class Service:
    proc: ServiceProcess
    db_path: Path

    @property
    def url(self) -> str:
        return self.proc.url

    def counts(self) -> tuple[int, int]:
        with sqlite3.connect(self.db_path) as conn:
            jobs = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
            reports = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
        return int(jobs), int(reports)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("hostile")
    data_dir = work / "data"
    with ServiceProcess(data_dir, env={"REPORTSCORE_MAX_BODY_BYTES": str(MAX_BODY)}) as proc:
        yield Service(proc, data_dir / "reportscore.db")


@pytest.fixture
def untouched(service: Service) -> Iterator[Service]:
    """Asserts, after the test, that nothing was stored and the service still scores a normal batch."""
    before = service.counts()
    yield service
    assert service.counts() == before, "a rejected request stored something"
    assert httpx.get(f"{service.url}/health/ready", timeout=10).status_code == 200
    ok = httpx.post(f"{service.url}/predict", json=[REPORT], timeout=10)
    assert ok.status_code == 202, ok.text
    done = httpx.get(f"{service.url}/task/{ok.json()['task_id']}", params={"wait": 10}, timeout=20)
    assert done.json()["status"] == "SUCCESS", done.text


def assert_clean_error(status: int, body: bytes, expected: Iterable[int]) -> dict[str, Any]:
    expected = tuple(expected)
    assert status in expected, (status, body[:500])
    text = body.decode("utf-8", errors="replace")
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} in the error body: {text[:500]}"
    parsed = json.loads(body)
    assert isinstance(parsed, dict)
    assert "detail" in parsed
    return parsed


def post(service: Service, content: bytes, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(f"{service.url}/predict", content=content, headers=headers, timeout=30)


# --- raw HTTP/1.1, for what a client library will not send --------------------------------------------------------
def raw_exchange(
    port: int, head: bytes, chunks: Iterable[bytes], *, delay_s: float = 0.0, shutdown: bool = False
) -> tuple[int | None, bytes, int]:
    """Send ``head`` then each chunk (``delay_s`` apart) and read the answer. Returns (status, body, bytes of the
    chunks sent before the server answered or closed); status None when the server closed without answering."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(True)
        for chunk in chunks:
            if _answered(sock):
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            if delay_s:
                time.sleep(delay_s)
        if shutdown:
            sock.shutdown(socket.SHUT_WR)
        data = _read_response(sock)
    if not data:
        return None, b"", sent
    status = int(data.split(b" ", 2)[1])
    header_block, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in header_block.lower():
        body = _dechunk(body)
    return status, body, sent


def _answered(sock: socket.socket) -> bool:
    sock.settimeout(0.0)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(30)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(15)
    try:
        while True:
            part = sock.recv(65536)
            if not part:
                break
            data += part
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and len(body) >= int(value):
                        return data
                if b"transfer-encoding: chunked" in head.lower() and body.endswith(b"0\r\n\r\n"):
                    return data
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def _head(port: int, extra: str) -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


# --- the hostile bodies -----------------------------------------------------------------------------------------
def test_deeply_nested_json_is_422(untouched: Service) -> None:
    for body in (b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, b'{"a":' * 40_000 + b"1" + b"}" * 40_000):
        resp = post(untouched, body)
        assert_clean_error(resp.status_code, resp.content, [422])


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("profile_rating", "1e400"),
        ("profile_rating", "-1e400"),
        ("profile_rating", "1e39"),  # finite as a double, infinite as the models' float32
        ("report_text_len", "1e400"),
        ("report_text_len", str(10**1000)),
        ("popularity", str(10**1000)),
        ("lifetime_matches_created", "9" * 5000),  # past Python's 4300-digit int parsing limit
    ],
)
def test_huge_numbers_are_422(untouched: Service, field: str, literal: str) -> None:
    report = json.dumps({**REPORT, field: "PLACEHOLDER"}).replace('"PLACEHOLDER"', literal)
    resp = post(untouched, f"[{report}]".encode())
    error = assert_clean_error(resp.status_code, resp.content, [422])
    assert len(resp.content) < 4096, "the error echoes the huge number back in full"
    assert error["detail"][0]["loc"] in (["body", 0, field], ["body"]), error


def test_integral_floats_are_integers(untouched: Service) -> None:
    """JSON has one number type: 3.0 is the integer 3 (JSON Schema agrees); 3.5 is not."""
    ok = httpx.post(f"{untouched.url}/score", params={"persist": "false"}, json=[{**REPORT, "popularity": 3.0}])
    assert ok.status_code == 200, ok.text
    bad = post(untouched, json.dumps([{**REPORT, "popularity": 3.5}]).encode())
    assert_clean_error(bad.status_code, bad.content, [422])


def test_very_long_strings(untouched: Service) -> None:
    over_limit = json.dumps([{**REPORT, "report_id": "x" * (10 * 1024 * 1024)}]).encode()
    status, body, _ = raw_exchange(
        untouched.proc.port, _head(untouched.proc.port, f"Content-Length: {len(over_limit)}\r\n"), [over_limit]
    )
    assert status is not None
    assert_clean_error(status, body, [413])

    for field in ("report_id", "abuse_type"):
        resp = post(untouched, json.dumps([{**REPORT, field: "y" * (MAX_BODY - 200)}]).encode())
        error = assert_clean_error(resp.status_code, resp.content, [422])
        assert error["detail"][0]["loc"] == ["body", 0, field]
        assert len(resp.content) < 4096, "the error echoes the long string back in full"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_wrong_content_types(untouched: Service, content_type: str | None) -> None:
    resp = post(untouched, json.dumps([REPORT]).encode(), content_type=content_type)
    assert_clean_error(resp.status_code, resp.content, [415])


def test_form_body(untouched: Service) -> None:
    resp = httpx.post(f"{untouched.url}/predict", data={"abuse_type": "MSG", "popularity": "3"}, timeout=10)
    assert_clean_error(resp.status_code, resp.content, [415])


def test_json_with_parameters_and_suffix_types_is_accepted(untouched: Service) -> None:
    for content_type in ("application/json; charset=utf-8", "Application/JSON", "application/reports+json"):
        resp = httpx.post(
            f"{untouched.url}/score",
            params={"persist": "false"},
            content=json.dumps([REPORT]).encode(),
            headers={"content-type": content_type},
            timeout=10,
        )
        assert resp.status_code == 200, (content_type, resp.text)


def test_invalid_utf8_is_422(untouched: Service) -> None:
    for body in (b'[{"abuse_type": "\xff\xfe"}]', b"\xc3\x28", b'[{"report_id": "\xed\xa0\x80"}]'):
        resp = post(untouched, body)
        assert_clean_error(resp.status_code, resp.content, [422])


def test_lone_surrogates_are_422(untouched: Service) -> None:
    """JSON may escape a lone surrogate; UTF-8 (the store, the answer) cannot hold it."""
    for field in ("report_id", "abuse_type", "colour\\udc00"):
        report = json.dumps({**REPORT, "PLACEHOLDER": 1}).replace('"PLACEHOLDER": 1', f'"{field}": "x\\ud800y"')
        resp = post(untouched, f"[{report}]".encode())
        assert_clean_error(resp.status_code, resp.content, [422])


def test_nul_in_report_id_is_422(untouched: Service) -> None:
    """PostgreSQL's text cannot hold NUL: refused for every store, with the report's field as its location."""
    report = json.dumps({**REPORT, "report_id": "PLACEHOLDER"}).replace("PLACEHOLDER", "a\\u0000b")
    resp = post(untouched, f"[{report}]".encode())
    assert_clean_error(resp.status_code, resp.content, [422])
    assert json.loads(resp.content)["detail"][0]["loc"] == ["body", 0, "report_id"]


def test_truncated_json_is_422(untouched: Service) -> None:
    full = json.dumps([REPORT, REPORT]).encode()
    resp = post(untouched, full[: len(full) // 2])
    assert_clean_error(resp.status_code, resp.content, [422])


def test_body_cut_off_mid_request(untouched: Service) -> None:
    """The client promises 1,000 bytes, sends 300 and goes away: nothing is stored, nothing breaks."""
    body = json.dumps([REPORT] * 20).encode()
    port = untouched.proc.port
    status, resp_body, _ = raw_exchange(port, _head(port, "Content-Length: 1000\r\n"), [body[:300]], shutdown=True)
    if status is not None:  # the server may answer, or just close: both are fine, a 5xx is not
        assert_clean_error(status, resp_body, [400, 422])


def test_slow_chunked_body_is_cut_at_the_limit_while_reading(untouched: Service) -> None:
    """No Content-Length, chunked transfer, dribbled in 4 KiB pieces: 413 once past the limit, without waiting for
    the rest of the body."""
    port = untouched.proc.port
    pieces = [b"[" + b" " * 4095] + [b" " * 4096] * (4 * MAX_BODY // 4096)
    status, body, sent = raw_exchange(
        port, _head(port, "Transfer-Encoding: chunked\r\n"), _chunked(pieces), delay_s=0.001
    )
    assert status is not None
    assert_clean_error(status, body, [413])
    assert sent < 2 * MAX_BODY, f"the server let {sent} bytes through before answering"


def test_lying_content_length(untouched: Service) -> None:
    port = untouched.proc.port
    body = b"[" + b" " * (2 * MAX_BODY) + b"]"
    # claims to be small, sends more than the limit: the app reads what was declared (truncated JSON, 422); the rest
    # is not a valid next request, which uvicorn may answer first with its own plain 400 before closing
    status, resp_body, _ = raw_exchange(port, _head(port, "Content-Length: 100\r\n"), [body])
    if status == 400:
        assert resp_body == b"Invalid HTTP request received."
    else:
        assert status is not None
        assert_clean_error(status, resp_body, [413, 422])
    # claims more than the limit: refused from the header alone
    status, resp_body, sent = raw_exchange(
        port, _head(port, f"Content-Length: {10 * MAX_BODY}\r\n"), [b"[" + b" " * 1023] * 10, delay_s=0.01
    )
    assert status is not None
    assert_clean_error(status, resp_body, [413])
    assert sent < 10 * MAX_BODY


def test_slow_body_under_a_lying_content_length_is_cut_while_reading(untouched: Service) -> None:
    """Content-Length says just under the limit (so the header check passes) but is honoured: the body limit is
    counted on the bytes read, and the service answers once it has them."""
    port = untouched.proc.port
    declared = MAX_BODY - 10
    pieces = [b"[" + b" " * 1023] + [b" " * 1024] * (declared // 1024)
    data = b"".join(pieces)[:declared]
    status, resp_body, _ = raw_exchange(
        port,
        _head(port, f"Content-Length: {declared}\r\n"),
        [data[i : i + 4096] for i in range(0, len(data), 4096)],
        delay_s=0.005,
    )
    assert status is not None
    assert_clean_error(status, resp_body, [422])  # truncated JSON, under the limit


def test_many_errors_are_each_listed_and_long_inputs_summarised(untouched: Service) -> None:
    bad = [{**REPORT, "popularity": 9}] * 30
    resp = post(untouched, json.dumps(bad).encode())
    errors = assert_clean_error(resp.status_code, resp.content, [422])["detail"]
    assert [e["loc"] for e in errors] == [["body", i, "popularity"] for i in range(30)]
    wrapped = post(untouched, json.dumps({"reports": [REPORT] * 100}).encode())
    error = assert_clean_error(wrapped.status_code, wrapped.content, [422])["detail"][0]
    assert error["loc"] == ["body"]
    assert len(wrapped.content) < 4096
