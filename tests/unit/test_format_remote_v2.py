"""The remote (V2) model format against a small V2 server running in this process (uvicorn in a thread): batching,
timeouts, retries with backoff, the circuit breaker, validation on registration, and how scoring treats an outage."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from reportscore.jobs import submission as jobs_submission
from reportscore.jobs.views import get_task
from reportscore.scoring import registration
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.base import ModelLoadError, ModelUnavailableError
from reportscore.scoring.formats.remote_v2 import CircuitBreaker, Endpoint, RemoteOptions, RemoteV2Format, RemoteV2Model
from reportscore.scoring.registry import ServingModel, load_version
from reportscore.scoring.service import score_jobs
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.models import Job, JobStatus

WIDTH = len(FeatureSchema.default().names)
MODEL = "stub"


def truth(matrix: np.ndarray) -> np.ndarray:
    """The stub model's positive-class probability for each row."""
    return 1.0 / (1.0 + np.exp(-(matrix.astype(np.float64) @ np.linspace(-0.01, 0.01, matrix.shape[1]))))


@dataclass
class V2Stub:
    """A V2 server of one model, ``stub``, whose behaviour a test changes between calls."""

    url: str = ""
    rows: list[int] = field(default_factory=list)
    """The number of rows of each inference request that reached the model."""
    requests: int = 0
    unavailable_next: int = 0
    """Answer this many next requests (metadata or inference) with HTTP 503."""
    delay_s: float = 0.0
    scores: str = "ok"  # "ok", "nan" or "above-one"
    ready: bool = True
    """False: the model is loading, inference answers 400 (as MLServer does) and ``/ready`` does not answer 200."""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v2/models/{name}")
        async def metadata(name: str) -> Any:
            gate = self._gate(name)
            if gate is not None:
                return gate
            return {"name": MODEL, "platform": "stub", "inputs": [{"name": "input-0", "shape": [-1, WIDTH]}]}

        @app.get("/v2/models/{name}/ready")
        async def ready(name: str) -> Any:
            if name != MODEL or not self.ready:
                return JSONResponse({"error": f"model {name} not ready"}, status_code=400)
            return {}

        @app.post("/v2/models/{name}/infer")
        async def infer(name: str, request: Request) -> Any:
            gate = self._gate(name)
            if gate is not None:
                return gate
            if not self.ready:
                return JSONResponse({"error": f"Model {name} is not ready yet."}, status_code=400)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            spec = (await request.json())["inputs"][0]
            if spec["shape"][1] != WIDTH:
                return JSONResponse({"error": f"expected {WIDTH} columns"}, status_code=400)
            matrix = np.asarray(spec["data"], dtype=np.float32).reshape(spec["shape"])
            self.rows.append(len(matrix))
            p = truth(matrix)
            if self.scores == "nan":
                p[-1] = np.nan
            elif self.scores == "above-one":
                p = p + 1.0
            proba = np.stack([1 - p, p], axis=1)
            return {
                "model_name": MODEL,
                "outputs": [
                    {"name": "predict", "shape": [len(p)], "datatype": "FP64", "data": (p > 0.5).tolist()},
                    {
                        "name": "predict_proba",
                        "shape": list(proba.shape),
                        "datatype": "FP64",
                        "data": proba.ravel().tolist(),
                    },
                ],
            }

        return app

    def _gate(self, name: str) -> JSONResponse | None:
        self.requests += 1
        if name != MODEL:
            return JSONResponse({"error": f"model {name} not found"}, status_code=404)
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            return JSONResponse({"error": "overloaded"}, status_code=503)
        return None


@pytest.fixture(scope="module")
def stub() -> Iterator[V2Stub]:
    server_stub = V2Stub()
    server = uvicorn.Server(
        uvicorn.Config(server_stub.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the stub V2 server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    server_stub.url = f"http://127.0.0.1:{port}"
    yield server_stub
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def v2(stub: V2Stub) -> V2Stub:
    """The module's stub, reset to answering normally."""
    stub.rows.clear()
    stub.requests, stub.unavailable_next, stub.delay_s, stub.scores, stub.ready = 0, 0, 0.0, "ok", True
    return stub


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket is closed


def _model(url: str, sleeps: list[float] | None = None, **options: Any) -> RemoteV2Model:
    endpoint = Endpoint(url=url, model=MODEL, output_name="predict_proba")
    return RemoteV2Model(
        endpoint, RemoteOptions(**options), sleep=(sleeps.append if sleeps is not None else time.sleep)
    )


def _matrix(n: int) -> np.ndarray:
    return np.random.default_rng(n).uniform(0, 100, size=(n, WIDTH)).astype(np.float32)


# --- the descriptor ---------------------------------------------------------------------------------------------
def test_an_endpoint_url_names_the_model_and_its_version() -> None:
    e = Endpoint.parse_url("http://mlserver:8080/v2/models/fraud/versions/3", output_name="predict_proba")
    assert (e.url, e.model, e.model_version, e.output_name) == ("http://mlserver:8080", "fraud", "3", "predict_proba")
    assert e.model_path == "/v2/models/fraud/versions/3"
    behind_prefix = Endpoint.parse_url("https://gw.example/serving/v2/models/fraud")
    assert (behind_prefix.url, behind_prefix.model, behind_prefix.model_version) == (
        "https://gw.example/serving",
        "fraud",
        None,
    )
    assert Endpoint.from_dict(e.to_dict()) == e


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"protocol": "v1", "url": "http://h", "model": "m"}, "not a remote model descriptor"),
        ({"protocol": "v2", "url": "ftp://h", "model": "m"}, r"not an http\(s\) URL"),
        ({"protocol": "v2", "url": "http://h"}, "model"),
        ({"protocol": "v2", "url": "http://h", "model": "m", "output_column": -1}, "output_column"),
        ({"protocol": "v2", "url": "http://h", "model": "m", "token": "x"}, "unknown keys"),
    ],
)
def test_a_bad_descriptor_is_refused(doc: dict[str, Any], reason: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=reason):
        Endpoint.from_dict(doc)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ModelLoadError, match="bad remote model descriptor"):
        RemoteV2Format().load(path, threads=1)


# --- scoring ----------------------------------------------------------------------------------------------------
def test_large_calls_are_split_into_batches_and_scores_come_back_in_order(v2: V2Stub) -> None:
    model = _model(v2.url, batch_rows=1000)
    matrix = _matrix(2500)
    scores = model.predict(matrix)
    assert v2.rows == [1000, 1000, 500]
    np.testing.assert_allclose(scores, truth(matrix), rtol=1e-6)
    assert model.predict(matrix[:0]).shape == (0,)


def test_the_score_column_is_chosen_from_the_output(v2: V2Stub) -> None:
    matrix = _matrix(7)
    first = RemoteV2Model(Endpoint(url=v2.url, model=MODEL), RemoteOptions())  # first output: [N] labels
    np.testing.assert_array_equal(first.predict(matrix), (truth(matrix) > 0.5).astype(float))
    column0 = RemoteV2Model(
        Endpoint(url=v2.url, model=MODEL, output_name="predict_proba", output_column=0), RemoteOptions()
    )
    np.testing.assert_allclose(column0.predict(matrix), 1 - truth(matrix), rtol=1e-6)
    missing = RemoteV2Model(Endpoint(url=v2.url, model=MODEL, output_name="probabilities"), RemoteOptions())
    with pytest.raises(ValueError, match="no output named 'probabilities'"):
        missing.predict(matrix)


def test_failed_requests_are_sent_again_after_exponential_backoff(v2: V2Stub) -> None:
    sleeps: list[float] = []
    model = _model(v2.url, sleeps, retries=3, backoff_base_s=0.05, backoff_max_s=0.08)
    v2.unavailable_next = 3
    matrix = _matrix(4)
    np.testing.assert_allclose(model.predict(matrix), truth(matrix), rtol=1e-6)
    assert v2.requests == 4
    assert sleeps == [0.05, 0.08, 0.08]  # doubled, capped
    assert model.breaker.state == "closed"


def test_an_endpoint_that_stays_down_is_unavailable_after_the_tries(v2: V2Stub) -> None:
    sleeps: list[float] = []
    model = _model(v2.url, sleeps, retries=2, backoff_base_s=0.01)
    v2.unavailable_next = 100
    with pytest.raises(ModelUnavailableError, match="unavailable after 3 tries: HTTP 503"):
        model.predict(_matrix(2))
    assert v2.requests == 3
    refused = _model(_closed_port_url(), sleeps, retries=1)
    with pytest.raises(ModelUnavailableError, match="unavailable after 2 tries: ConnectError"):
        refused.predict(_matrix(2))


def test_a_refusal_while_the_model_is_not_ready_is_an_outage(v2: V2Stub) -> None:
    v2.ready = False
    model = _model(v2.url, [], retries=0)
    with pytest.raises(ModelUnavailableError, match=r"the model is not ready \(HTTP 400: .*not ready yet"):
        model.predict(_matrix(2))
    loading = RemoteV2Model(
        Endpoint(url=v2.url, model=MODEL, output_name="predict_proba"),
        RemoteOptions(retries=1),
        sleep=lambda _: setattr(v2, "ready", True),  # it finishes loading while the client waits
    )
    matrix = _matrix(3)
    np.testing.assert_allclose(loading.predict(matrix), truth(matrix), rtol=1e-6)


def test_a_slow_answer_times_out(v2: V2Stub) -> None:
    model = _model(v2.url, retries=0, timeout_s=0.2)
    v2.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="timed out"):
        model.predict(_matrix(2))
    assert time.monotonic() - started < 0.9


def test_a_refused_request_is_an_error_of_the_job_not_an_outage(v2: V2Stub) -> None:
    model = _model(v2.url, breaker_failures=1)
    with pytest.raises(ValueError, match="HTTP 400") as caught:
        model.predict(np.zeros((2, WIDTH + 1), dtype=np.float32))
    assert not isinstance(caught.value, ModelUnavailableError)
    assert model.breaker.state == "closed"  # the server answered: it is up


def test_the_breaker_fails_fast_once_open_and_a_probe_closes_it(v2: V2Stub) -> None:
    model = _model(v2.url, retries=0, breaker_failures=2, breaker_reset_s=0.3)
    v2.unavailable_next = 2
    for _ in range(2):
        with pytest.raises(ModelUnavailableError, match="unavailable after 1 tries"):
            model.predict(_matrix(1))
    assert model.breaker.state == "open"
    before = v2.requests
    with pytest.raises(ModelUnavailableError, match="circuit breaker open after 2 consecutive failures"):
        model.predict(_matrix(1))
    assert v2.requests == before  # failed fast: no request went out
    deadline = time.monotonic() + 5
    while model.breaker.state != "half-open":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    matrix = _matrix(3)
    np.testing.assert_allclose(model.predict(matrix), truth(matrix), rtol=1e-6)  # the probe succeeds
    assert model.breaker.state == "closed"


def test_a_failed_probe_opens_the_breaker_again_and_only_one_probe_goes_out() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_s=10.0, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.record(ok=False)
    assert breaker.state == "closed"
    breaker.record(ok=False)
    assert breaker.state == "open"
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open"
    assert breaker.allow()
    assert not breaker.allow()  # one probe at a time
    breaker.record(ok=False)
    assert breaker.state == "open"
    now[0] = 19.0
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.record(ok=True)
    assert breaker.state == "closed"
    assert breaker.allow()


# --- registration -----------------------------------------------------------------------------------------------
def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        remote_retries=0,
        remote_backoff_base_s=0.01,
        **overrides,
    )


def test_register_remote_validates_and_stores_a_descriptor(v2: V2Stub, settings: Settings, db: Database) -> None:
    view = registration.register_remote(
        db=db, settings=settings, url=f"{v2.url}/v2/models/{MODEL}", version="remote-1", output="predict_proba"
    )
    assert view.format == "remote_v2"
    assert view.metadata["remote"] == {
        "protocol": "v2",
        "url": v2.url,
        "model": MODEL,
        "model_version": None,
        "input_name": "input-0",
        "output_name": "predict_proba",
        "output_column": None,
    }
    assert view.reference_source == "synthetic"
    assert sum(v2.rows) > 20_000  # warm-up and the reference sample went through the endpoint
    loaded = load_version(db=db, settings=settings, version="remote-1")  # as every process loads it
    assert loaded.format == "remote_v2"
    assert loaded.sha256 == view.sha256
    columns = {
        k: [v]
        for k, v in {
            "abuse_type": "MSG",
            "report_text_len": 5,
            "profile_rating": 2.0,
            "popularity": 3,
            "lifetime_matches_created": 9,
        }.items()
    }
    expected = truth(loaded.schema.encode(columns))
    np.testing.assert_allclose(loaded.score(columns), expected, rtol=1e-6)


@pytest.mark.parametrize(("scores", "reason"), [("nan", "finite score in 0..1"), ("above-one", "finite score in 0..1")])
def test_register_remote_refuses_scores_that_are_not_finite_in_0_1(
    v2: V2Stub, settings: Settings, db: Database, scores: str, reason: str
) -> None:
    v2.scores = scores
    with pytest.raises(registration.RegistrationError, match=reason):
        registration.register_remote(
            db=db, settings=settings, url=f"{v2.url}/v2/models/{MODEL}", version="bad", output="predict_proba"
        )
    assert registration.list_models(db=db, settings=settings) == []


def test_register_remote_refuses_an_unknown_model_or_a_dead_endpoint(v2: V2Stub, tmp_path: Path, db: Database) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(registration.RegistrationError, match=r"not ready.*HTTP 404: .*model other not found"):
        registration.register_remote(db=db, settings=settings, url=f"{v2.url}/v2/models/other", version="x")
    with pytest.raises(registration.RegistrationError, match=r"ModelUnavailableError.*unavailable after 1 tries"):
        registration.register_remote(db=db, settings=settings, url=f"{_closed_port_url()}/v2/models/m", version="x")
    with pytest.raises(registration.RegistrationError, match="not an http"):
        registration.register_remote(db=db, settings=settings, url="mlserver:8080", version="x")
    assert registration.list_models(db=db, settings=settings) == []


def test_register_remote_over_http(v2: V2Stub, tmp_path: Path) -> None:
    from tests.e2e.conftest import app_client

    with app_client(tmp_path) as client:
        url = f"{v2.url}/v2/models/{MODEL}"
        created = client.post("/models/remote", json={"version": "r-1", "url": url, "output": "predict_proba"})
        assert created.status_code == 201, created.text
        assert created.json()["format"] == "remote_v2"
        assert created.json()["is_champion"] is False
        assert client.get("/models/r-1").json()["metadata"]["remote"]["output_name"] == "predict_proba"
        again = client.post("/models/remote", json={"version": "r-1", "url": url})
        assert again.status_code == 409
        v2.scores = "nan"
        refused = client.post("/models/remote", json={"version": "r-2", "url": url, "output": "predict_proba"})
        assert refused.status_code == 422
        assert "finite score in 0..1" in refused.json()["detail"]
        assert client.post("/models/remote", json={"version": "r 3", "url": url}).status_code == 422
        assert [v["version"] for v in client.get("/models").json()["versions"]] == ["1.0.0", "r-1"]


# --- scoring jobs while the endpoint is down --------------------------------------------------------------------
def _job(db: Database, n: int) -> str:
    report = {
        "abuse_type": "PRF",
        "report_text_len": 3,
        "profile_rating": 4.0,
        "popularity": 2,
        "lifetime_matches_created": 1,
    }
    return jobs_submission.submit_job(
        db=db, reports=[report] * n, owner="t", idempotency_key=None, idempotency_ttl_s=60
    ).job_id


def _serving(model: RemoteV2Model) -> ServingModel:
    from datetime import UTC, datetime

    return ServingModel(
        name="m",
        version="remote-1",
        format="remote_v2",
        sha256="0" * 64,
        schema=FeatureSchema.default(),
        model=model,
        loaded_at=datetime.now(UTC),
        warmup_ms=0.0,
    )


def _status(db: Database, job_id: str) -> tuple[JobStatus, int, str | None]:
    with db.read() as s:
        row = s.execute(select(Job.status, Job.attempts, Job.error).where(Job.id == job_id)).one()
    return row[0], row[1], row[2]


def test_an_outage_releases_the_jobs_and_they_finish_once_the_endpoint_is_back(v2: V2Stub, db: Database) -> None:
    serving = _serving(_model(v2.url, retries=0, breaker_failures=100))
    jobs = [_job(db, 2), _job(db, 3)]
    v2.unavailable_next = 1
    with pytest.raises(ModelUnavailableError):
        score_jobs(db=db, model=serving, job_ids=jobs, max_attempts=3)
    for job_id in jobs:
        assert _status(db, job_id)[:2] == (JobStatus.STARTED, 1)  # released: its lease has ended
    outcome = score_jobs(db=db, model=serving, job_ids=jobs, max_attempts=3)  # the runner tries again
    assert sorted(outcome.succeeded) == sorted(jobs)
    for job_id, n in zip(jobs, (2, 3), strict=True):
        assert _status(db, job_id) == (JobStatus.SUCCESS, 2, None)
        view = get_task(db=db, task_id=job_id, owner="t")
        assert view is not None
        assert view.reports is not None
        assert len(view.reports) == n  # each report scored once


def test_a_job_out_of_attempts_fails_with_the_outage_as_its_reason(v2: V2Stub, db: Database) -> None:
    serving = _serving(_model(v2.url, retries=0, breaker_failures=100))
    job = _job(db, 1)
    v2.unavailable_next = 100
    for attempt in (1, 2):
        with pytest.raises(ModelUnavailableError):
            score_jobs(db=db, model=serving, job_ids=[job], max_attempts=3)
        assert _status(db, job)[:2] == (JobStatus.STARTED, attempt)
    outcome = score_jobs(db=db, model=serving, job_ids=[job], max_attempts=3)
    assert outcome.failed == [job]
    status, attempts, error = _status(db, job)
    assert (status, attempts) == (JobStatus.FAILURE, 3)
    assert error is not None
    assert error.startswith("scoring failed: the model was unavailable at each of 3 attempts: remote model stub")
    assert "HTTP 503" in error
