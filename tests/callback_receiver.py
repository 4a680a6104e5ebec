"""A real HTTP receiver for callback tests: a threaded server on a free loopback port that records every request
and answers with programmed status codes; and the verification snippet of docs/callbacks.md, loaded from the page."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

CALLBACKS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "callbacks.md"
SECRET = "test-callback-secret-0123456789"


def documented_verify() -> Callable[..., bool]:
    """``verify_callback`` exactly as docs/callbacks.md shows it (the block after the ``callback-verify`` marker)."""
    text = CALLBACKS_PAGE.read_text(encoding="utf-8")
    match = re.search(r"<!-- callback-verify[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/callbacks.md has no callback verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/callbacks.md", "exec"), namespace)  # noqa: S102 - our own docs
    verify: Callable[..., bool] = namespace["verify_callback"]
    return verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Answers the n-th request with ``statuses[n]`` (then ``default``); ``statuses``/``default`` may change."""

    def __init__(self, statuses: list[int] | None = None, *, default: int = 200) -> None:
        self.statuses = list(statuses or [])
        self.default = default
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                    receiver.received.append(Received(self.path, {k: v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hooks/reportscore"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def for_task(self, task_id: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("X-Reportscore-Task-Id") == task_id]

    def wait_for(self, task_id: str, n: int, *, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.for_task(task_id)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{len(self.for_task(task_id))} deliveries of {task_id}, expected {n}")


def callback_env(**extra: str) -> dict[str, str]:
    """Environment of a deployment with fast callbacks and loopback allow-listed (the receiver is on 127.0.0.1)."""
    return {
        "REPORTSCORE_CALLBACKS_ENABLED": "true",
        "REPORTSCORE_CALLBACK_SECRET": SECRET,
        "REPORTSCORE_CALLBACK_ALLOW_PRIVATE_NETWORKS": '["127.0.0.1/32"]',
        "REPORTSCORE_CALLBACK_BACKOFF_BASE_S": "0.2",
        "REPORTSCORE_CALLBACK_BACKOFF_MAX_S": "1",
        "REPORTSCORE_CALLBACK_POLL_INTERVAL_S": "0.1",
        "REPORTSCORE_CALLBACK_TIMEOUT_S": "3",
        **extra,
    }
