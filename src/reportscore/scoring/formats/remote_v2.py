"""A model served by another server over the Open Inference Protocol (V2 REST: MLServer, Triton, KServe, ...).

The registered "artifact" is a small JSON descriptor (``remote.json``), stored and sha256-checked like any other, so
every process loads the same endpoint the same way::

    {"protocol": "v2", "url": "http://mlserver:8080", "model": "reportscore-reference", "model_version": null,
     "input_name": "input-0", "output_name": "predict_proba", "output_column": null}

Rows are sent in schema order as one ``FP32`` tensor ``[N, n_features]`` per request, in batches of at most
``batch_rows``. The score is the named output (or the only/first one): column 1 of an ``[N, 2]`` class-probability
output, or an ``[N]`` / ``[N, 1]`` output already in 0..1 (``output_column`` picks another column).

A request that cannot be answered (connection refused, timeout, HTTP 408/429/5xx, or any refusal while the server
says the model is not ready) is tried again with exponential
backoff; when the tries run out, or the circuit breaker is open (after ``breaker_failures`` consecutive failed
calls it fails fast for ``breaker_reset_s``, then lets one probe through), :class:`ModelUnavailableError` is raised:
the scoring service treats it as retryable and the job runs again later.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2 as httpx
import numpy as np

from reportscore.scoring.formats.base import FloatMatrix, ModelLoadError, ModelUnavailableError, Scores

DESCRIPTOR_KEYS = ("protocol", "url", "model", "model_version", "input_name", "output_name", "output_column")
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RemoteOptions:
    """How this process talks to remote models (from ``REPORTSCORE_REMOTE_*``)."""

    connect_timeout_s: float = 2.0
    timeout_s: float = 10.0
    batch_rows: int = 1000
    retries: int = 2
    backoff_base_s: float = 0.2
    backoff_max_s: float = 2.0
    breaker_failures: int = 5
    breaker_reset_s: float = 10.0


@dataclass(frozen=True)
class Endpoint:
    """What a ``remote.json`` descriptor names."""

    url: str
    model: str
    model_version: str | None = None
    input_name: str = "input-0"
    output_name: str | None = None
    output_column: int | None = None

    @property
    def model_path(self) -> str:
        path = f"/v2/models/{quote(self.model, safe='')}"
        return path + (f"/versions/{quote(self.model_version, safe='')}" if self.model_version else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": "v2",
            "url": self.url,
            "model": self.model,
            "model_version": self.model_version,
            "input_name": self.input_name,
            "output_name": self.output_name,
            "output_column": self.output_column,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Endpoint:
        if not isinstance(doc, dict) or doc.get("protocol") != "v2":
            raise ValueError('not a remote model descriptor (expected a JSON object with "protocol": "v2")')
        unknown = sorted(set(doc) - set(DESCRIPTOR_KEYS))
        if unknown:
            raise ValueError(f"unknown keys {unknown}")
        url, model = doc.get("url"), doc.get("model")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ValueError(f"url {url!r} is not an http(s) URL")
        if not isinstance(model, str) or not model:
            raise ValueError("model: the served model's name is required")
        column = doc.get("output_column")
        if column is not None and (not isinstance(column, int) or isinstance(column, bool) or column < 0):
            raise ValueError(f"output_column {column!r} must be a column number >= 0")
        return cls(
            url=url.rstrip("/"),
            model=model,
            model_version=_optional_str(doc, "model_version"),
            input_name=_optional_str(doc, "input_name") or "input-0",
            output_name=_optional_str(doc, "output_name"),
            output_column=column,
        )

    @classmethod
    def parse_url(cls, url: str, **fields: Any) -> Endpoint:
        """An endpoint from ``http://host:port/v2/models/NAME[/versions/V]`` (or a base URL and ``model=``)."""
        parts = urlsplit(url)
        segments = [s for s in parts.path.split("/") if s]
        found: dict[str, Any] = {}
        if "models" in segments:
            at = segments.index("models")
            if at + 1 < len(segments):
                found["model"] = segments[at + 1]
            if at + 3 < len(segments) and segments[at + 2] == "versions":
                found["model_version"] = segments[at + 3]
            prefix = segments[: at - 1] if at >= 1 and segments[at - 1] == "v2" else segments[:at]
            url = parts._replace(path="/" + "/".join(prefix) if prefix else "", query="", fragment="").geturl()
        given = {k: v for k, v in fields.items() if v is not None}
        return cls.from_dict({"protocol": "v2", "url": url, **found, **given})


def _optional_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{key} must be a non-empty string or null")
    return value


class CircuitBreaker:
    """Closed until ``failures`` consecutive failures; then open (calls fail fast) for ``reset_s``; then half-open:
    one probe call goes through — its success closes the breaker, its failure opens it again."""

    def __init__(self, *, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self._reset_s else "open"

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state, only the one probe)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at < self._reset_s or self._probing:
                return False
            self._probing = True
            return True

    def record(self, *, ok: bool) -> None:
        with self._lock:
            self._probing = False
            if ok:
                self._consecutive, self._opened_at = 0, None
                return
            self._consecutive += 1
            if self._opened_at is not None or self._consecutive >= self._threshold:
                self._opened_at = self._clock()  # opened, or re-opened by a failed probe


class RemoteV2Model:
    """Scores by calling the V2 endpoint; thread-safe (one HTTP connection pool and breaker per process)."""

    format = "remote_v2"
    feature_names: list[str] | None = None

    def __init__(
        self, endpoint: Endpoint, options: RemoteOptions, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.endpoint = endpoint
        self.options = options
        self.breaker = CircuitBreaker(failures=options.breaker_failures, reset_s=options.breaker_reset_s)
        self._sleep = sleep
        timeout = httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s)
        self._client = httpx.Client(base_url=endpoint.url, timeout=timeout)
        self.n_features: int | None = None
        """The input width the server's metadata declares, when it declares one."""

    def close(self) -> None:
        self._client.close()

    def __del__(self) -> None:  # a replaced champion is dropped, not closed: its connections close with it
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    def predict(self, matrix: FloatMatrix) -> Scores:
        if matrix.ndim != 2 or (self.n_features is not None and matrix.shape[1] != self.n_features):
            raise ValueError(f"the remote model takes {self.n_features} columns, got a matrix of shape {matrix.shape}")
        step = self.options.batch_rows
        parts = [self._infer(matrix[start : start + step]) for start in range(0, len(matrix), step)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

    def metadata(self) -> dict[str, Any]:
        """The server's model metadata (``GET /v2/models/NAME``), through the same retries and breaker."""
        answer = self._call("GET", self.endpoint.model_path, None)
        return _json(answer, self.endpoint)

    def _infer(self, rows: FloatMatrix) -> Scores:
        x = np.ascontiguousarray(rows, dtype=np.float32)
        body: dict[str, Any] = {
            "inputs": [
                {
                    "name": self.endpoint.input_name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.ravel().tolist(),
                }
            ]
        }
        if self.endpoint.output_name is not None:
            body["outputs"] = [{"name": self.endpoint.output_name}]
        answer = self._call("POST", f"{self.endpoint.model_path}/infer", json.dumps(body).encode())
        return _scores(_json(answer, self.endpoint), self.endpoint, len(x))

    def _call(self, method: str, path: str, content: bytes | None) -> httpx.Response:
        """One request, tried ``1 + retries`` times; ModelUnavailableError when the endpoint does not answer."""
        where = f"{self.endpoint.url}{path}"
        if not self.breaker.allow():
            raise ModelUnavailableError(
                f"remote model {self.endpoint.model} at {self.endpoint.url}: circuit breaker open after "
                f"{self.options.breaker_failures} consecutive failures; "
                f"next probe within {self.options.breaker_reset_s:g} s"
            )
        reason = ""
        for attempt in range(self.options.retries + 1):
            if attempt:
                self._sleep(min(self.options.backoff_max_s, self.options.backoff_base_s * 2 ** (attempt - 1)))
            try:
                answer = self._client.request(
                    method, path, content=content, headers={"content-type": "application/json"} if content else None
                )
            except httpx.TimeoutException as exc:
                reason = f"timed out ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if answer.status_code in _RETRYABLE_STATUS:
                reason = f"HTTP {answer.status_code}: {answer.text[:200]}"
                continue
            if answer.status_code >= 400 and not self._ready():  # e.g. MLServer's 400 while the model loads
                reason = f"the model is not ready (HTTP {answer.status_code}: {answer.text[:200]})"
                continue
            self.breaker.record(ok=True)  # the server answered: it is up, even when it refuses the request
            if answer.status_code >= 400:
                raise ValueError(f"{method} {where} answered HTTP {answer.status_code}: {answer.text[:500]}")
            return answer
        self.breaker.record(ok=False)
        raise ModelUnavailableError(
            f"remote model {self.endpoint.model} at {self.endpoint.url} unavailable after "
            f"{self.options.retries + 1} tries: {reason}"
        )

    def _ready(self) -> bool:
        """Whether the server says the model is ready (``GET /v2/models/NAME/ready`` answers 200)."""
        try:
            return self._client.get(f"{self.endpoint.model_path}/ready").status_code == 200
        except httpx.TransportError:
            return False


def _json(answer: httpx.Response, endpoint: Endpoint) -> dict[str, Any]:
    try:
        doc = answer.json()
    except ValueError as exc:
        raise ValueError(f"remote model {endpoint.model}: the answer is not JSON: {answer.text[:200]!r}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"remote model {endpoint.model}: the answer is not a JSON object")
    return doc


def _scores(doc: dict[str, Any], endpoint: Endpoint, n: int) -> Scores:
    """The score column of a V2 inference response for ``n`` rows."""
    outputs = doc.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise ValueError(f"remote model {endpoint.model}: the answer has no outputs")
    if endpoint.output_name is None:
        chosen = outputs[0]
    else:
        chosen = next((o for o in outputs if isinstance(o, dict) and o.get("name") == endpoint.output_name), None)
        if chosen is None:
            raise ValueError(f"remote model {endpoint.model}: no output named {endpoint.output_name!r}")
    try:
        shape = [int(s) for s in chosen["shape"]]
        data = np.asarray(chosen["data"], dtype=np.float64).reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"remote model {endpoint.model}: malformed output {str(chosen)[:200]}") from exc
    if data.ndim == 1:
        column = data
    elif data.ndim == 2:
        index = endpoint.output_column if endpoint.output_column is not None else (1 if shape[1] == 2 else 0)
        if index >= shape[1] or (endpoint.output_column is None and shape[1] > 2):
            raise ValueError(
                f"remote model {endpoint.model}: output of shape {shape}; set output_column to the score's column"
            )
        column = data[:, index]
    else:
        raise ValueError(f"remote model {endpoint.model}: output of shape {shape}, expected [N], [N, 1] or [N, 2]")
    if column.shape != (n,):
        raise ValueError(f"remote model {endpoint.model}: {column.shape[0]} scores for {n} rows")
    return np.ascontiguousarray(column, dtype=np.float64)


class RemoteV2Format:
    name = "remote_v2"
    suffixes: tuple[str, ...] = ()  # registered with ``--remote``, never implied by a file name

    def __init__(self, options: RemoteOptions | None = None) -> None:
        self.options = options or RemoteOptions()

    def load(self, path: Path, *, threads: int) -> RemoteV2Model:
        try:
            endpoint = Endpoint.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path.name}: bad remote model descriptor ({exc})") from exc
        model = RemoteV2Model(endpoint, self.options)
        try:
            meta = model.metadata()
        except ValueError as exc:  # the server answered, but not with this model's metadata (404: unknown model)
            model.close()
            raise ModelLoadError(f"remote model {endpoint.model} at {endpoint.url}: {exc}") from exc
        except ModelUnavailableError:
            model.close()
            raise
        model.n_features = _declared_width(meta, endpoint.input_name)
        return model


def _declared_width(meta: dict[str, Any], input_name: str) -> int | None:
    """The input's fixed width ``[N, width]`` when the metadata declares it (servers often leave it out)."""
    for spec in meta.get("inputs") or []:
        if isinstance(spec, dict) and spec.get("name") == input_name:
            shape = spec.get("shape")
            if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
                return shape[1]
    return None
