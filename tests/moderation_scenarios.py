"""The moderator's API exercised over real HTTP, shared by the embedded (e2e) and distributed (integration) tests.

Each scenario takes an HTTP client on a served deployment and a :class:`Database` on its store (to write a second
tenant's jobs through the service layer, and to look at what was recorded).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import numpy as np
import xgboost

from reportscore.jobs import submission as jobs_submission
from reportscore.moderation.reasons import top_reasons
from reportscore.scoring.registry import ServingModel, load_model_dir
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.repositories import moderation as moderation_repo

OTHER_TENANT = "tenant-b"


def random_reports(n: int, *, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "abuse_type": "MSG" if rng.random() < 0.6 else "PRF",
            "report_text_len": int(rng.integers(0, 3000)),
            "profile_rating": float(rng.uniform(0, 10)),
            "popularity": int(rng.integers(0, 6)),
            "lifetime_matches_created": int(rng.integers(0, 10_000)),
            "report_id": f"{prefix}-{i}",
        }
        for i in range(n)
    ]


def submit_and_wait(http: httpx.Client, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST the reports, wait for SUCCESS; returns one {id, report_id, score, features} per report."""
    resp = http.post("/predict", json=reports)
    assert resp.status_code == 202, resp.text
    task_id = resp.json()["task_id"]
    result = http.get(f"/task/{task_id}", params={"wait": 30}).json()
    assert result["status"] == "SUCCESS", result
    return [
        {"id": ref["id"], "report_id": ref["report_id"], "score": score, "features": report, "task_id": task_id}
        for ref, score, report in zip(result["reports"], result["score"], reports, strict=True)
    ]


def write_other_tenant(db: Database, model: ServingModel, reports: list[dict[str, Any]]) -> str:
    """A scored job of another tenant, written through the service layer (as POST /score stores one)."""
    payload = [dict(r) for r in reports]
    scores = model.score({k: [r[k] for r in payload] for k in payload[0] if k != "report_id"}).tolist()
    work = jobs_submission.scored_submission(
        reports=payload,
        scores=scores,
        owner=OTHER_TENANT,
        model_name=model.name,
        model_version=model.version,
        predict_ms=0.0,
        received_at=datetime.now(UTC),
    )
    with db.write() as session:
        return work(session)


def expected_reasons(model: ServingModel, features: dict[str, Any]) -> list[dict[str, Any]]:
    """XGBoost's own pred_contribs for this report, bias dropped, top 3 by |value|."""
    booster = model.model.booster  # type: ignore[attr-defined]
    matrix = model.schema.encode_reports([features])
    contribs = booster.predict(xgboost.DMatrix(matrix, feature_names=booster.feature_names), pred_contribs=True)
    assert contribs.shape == (1, len(model.schema.names) + 1)
    return top_reasons(model.schema.names, contribs[0, :-1])


def assert_reasons_match(got: list[dict[str, Any]] | None, want: list[dict[str, Any]]) -> None:
    assert got is not None
    assert [r["feature"] for r in got] == [r["feature"] for r in want]
    np.testing.assert_allclose([r["contribution"] for r in got], [r["contribution"] for r in want], atol=1e-6)


def page_all(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        resp = http.get("/reports/queue", params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def key(item: dict[str, Any]) -> tuple[float, int]:
    """The queue order: score descending, then id ascending."""
    return (-item["score"], item["id"])


def queue_order_pagination_and_reasons(http: httpx.Client, db: Database) -> None:
    """Pages are in (score DESC, id ASC) order; reports inserted between pages, above and below the cursor, cause
    no duplicate and no skip among the reports present at the start; reasons are XGBoost's own contributions."""
    model = load_model_dir(Settings().model_path)
    originals = submit_and_wait(http, random_reports(20, seed=11, prefix="orig"))
    top = max(originals, key=lambda r: r["score"])
    bottom = min(originals, key=lambda r: r["score"])
    other_ids = {r["id"] for r in originals}
    # another tenant's reports, scored higher than anything (the top report's features): never shown
    write_other_tenant(db, model, [dict(top["features"], report_id="b-0"), dict(bottom["features"], report_id="b-1")])

    seen: list[dict[str, Any]] = []
    inserted: list[tuple[dict[str, Any], bool]] = []  # (report, expected to appear on a later page)
    cursor = None
    for round_no in range(100):
        params: dict[str, Any] = {"limit": 6}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/reports/queue", params=params).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        if round_no < 2:  # between pages: one report above the cursor, one below (equal scores, later ids)
            last = (page["items"][-1]["score"], page["items"][-1]["id"])
            new = submit_and_wait(
                http,
                [
                    dict(top["features"], report_id=f"new-high-{round_no}"),
                    dict(bottom["features"], report_id=f"new-low-{round_no}"),
                ],
            )
            for report in new:
                inserted.append((report, key(report) > (-last[0], last[1])))
    assert [r for r, later in inserted if later]
    assert [r for r, later in inserted if not later]

    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)), "a report appeared twice"
    assert [key(i) for i in seen] == sorted(key(i) for i in seen), "pages are not in (score DESC, id ASC) order"
    assert other_ids <= set(ids), "a report present from the start was skipped"
    expected_new = {r["id"] for r, later in inserted if later}
    assert set(ids) - other_ids == expected_new
    assert all(not item["report_id"].startswith("b-") for item in seen), "another tenant's report leaked"

    # every item: its model, a UTC timestamp with offset, reasons equal to XGBoost's pred_contribs
    by_id = {r["id"]: r for r in originals + [r for r, _ in inserted]}
    for item in seen:
        assert item["model"] == {"name": model.name, "version": model.version}
        assert item["submitted_at"].endswith("+00:00")
        assert_reasons_match(item["reasons"], expected_reasons(model, by_id[item["id"]]["features"]))
        assert item["score"] == by_id[item["id"]]["score"]

    # reasons were stored once computed, under the version that scored the report
    with db.read() as session:
        rows = moderation_repo.job_review_rows(session, job_id=originals[0]["task_id"])
    assert all(r.reasons_stored for r in rows)

    # GET /task/{id}?explain=true gives the same reasons
    explained = http.get(f"/task/{originals[0]['task_id']}", params={"explain": "true"}).json()
    for ref in explained["reports"]:
        assert_reasons_match(ref["reasons"], expected_reasons(model, by_id[ref["id"]]["features"]))
    assert "reasons" not in http.get(f"/task/{originals[0]['task_id']}").json()["reports"][0]

    # the filter and the limits
    msg_only = page_all(http, abuse_type="MSG", limit=4)
    assert msg_only
    assert all(i["abuse_type"] == "MSG" for i in msg_only)
    assert [i["id"] for i in msg_only] == [i["id"] for i in page_all(http, limit=500) if i["abuse_type"] == "MSG"]
    for bad in ({"limit": 0}, {"limit": 501}, {"cursor": "not-a-cursor"}, {"cursor": "0.5_0"}, {"cursor": "0.5"}):
        resp = http.get("/reports/queue", params=bad)
        assert resp.status_code == 422, (bad, resp.text)
    resp = http.get("/reports/queue", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert resp.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert resp.json()["detail"][0]["type"] == "string_pattern_mismatch"

    # a cursor is a position, <score>_<id>: any one is valid, and it does not hold the filter
    everything = page_all(http, limit=500)
    middle = everything[len(everything) // 2]
    after_middle = http.get("/reports/queue", params={"limit": 500, "cursor": f"{middle['score']!r}_{middle['id']}"})
    assert [i["id"] for i in after_middle.json()["items"]] == [i["id"] for i in everything[len(everything) // 2 + 1 :]]
    first_msg = http.get("/reports/queue", params={"abuse_type": "MSG", "limit": 1}).json()
    assert first_msg["next_cursor"] == f"{first_msg['items'][0]['score']!r}_{first_msg['items'][0]['id']}"
    unfiltered = http.get("/reports/queue", params={"limit": 500, "cursor": first_msg["next_cursor"]}).json()
    first = first_msg["items"][0]
    assert [i["id"] for i in unfiltered["items"]] == [i["id"] for i in everything if key(i) > key(first)]
    for anywhere in ("1e999_1", "0_999999999999999999", "-1.5e-300_7"):
        assert http.get("/reports/queue", params={"cursor": anywhere}).status_code == 200, anywhere
    assert http.get("/reports/queue", params={"cursor": "1e999_1"}).json()["items"][:1] == everything[:1]


def feedback_statuses_and_queue(http: httpx.Client, db: Database) -> None:
    """Per-item statuses, idempotency, corrections kept as history, a reviewed report leaves the queue, and another
    tenant's reports can be neither seen nor reviewed."""
    model = load_model_dir(Settings().model_path)
    mine = submit_and_wait(http, random_reports(8, seed=21, prefix="fb"))
    later = submit_and_wait(http, [dict(mine[1]["features"], report_id="fb-0")])[0]  # a newer report "fb-0"
    other_job = write_other_tenant(db, model, [dict(mine[2]["features"], report_id="fb-2")])
    with db.read() as session:
        other_id = moderation_repo.job_review_rows(session, job_id=other_job)[0].id

    before = {i["id"] for i in page_all(http, limit=500)}
    assert {r["id"] for r in mine} | {later["id"]} <= before
    body = [
        {"id": mine[3]["id"], "outcome": "actioned", "reviewer": "mod-ana"},
        {"report_id": "fb-0", "outcome": "dismissed", "reviewer": "mod-ana"},  # the most recent "fb-0": later
        {"report_id": "fb-2", "outcome": "actioned", "reviewer": "mod-ben", "reviewed_at": "2026-11-27T09:00:00+01:00"},
        {"id": other_id, "outcome": "actioned", "reviewer": "mod-ben"},  # another tenant's: not found
        {"report_id": "no-such-report", "outcome": "dismissed", "reviewer": "mod-ben"},
        {"id": mine[3]["id"], "outcome": "actioned", "reviewer": "mod-cy"},  # twice in one request
    ]
    first = http.post("/feedback", json=body)
    assert first.status_code == 200, first.text
    statuses = [r["status"] for r in first.json()["results"]]
    assert statuses == ["recorded", "recorded", "recorded", "not_found", "not_found", "unchanged"]
    assert first.json()["results"][1]["id"] == later["id"]
    assert first.json()["results"][2]["id"] == mine[2]["id"]

    again = http.post("/feedback", json=body).json()["results"]  # a retried request changes nothing
    assert [r["status"] for r in again] == [
        "unchanged",
        "unchanged",
        "unchanged",
        "not_found",
        "not_found",
        "unchanged",
    ]

    correction = http.post(
        "/feedback", json=[{"id": mine[3]["id"], "outcome": "dismissed", "reviewer": "mod-lead"}]
    ).json()["results"][0]
    assert correction["status"] == "recorded"
    assert correction["previous_outcome"] == "actioned"

    after = {i["id"] for i in page_all(http, limit=500)}
    reviewed = {mine[3]["id"], later["id"], mine[2]["id"]}
    assert after == before - reviewed, "exactly the reviewed reports left the queue"
    assert mine[0]["id"] in after  # the older "fb-0" was not reviewed

    with db.read() as session:
        history = moderation_repo.feedback_history(session, report_id=mine[3]["id"])
        assert [(h.outcome, h.previous_outcome, h.reviewer) for h in history] == [
            ("actioned", None, "mod-ana"),
            ("dismissed", "actioned", "mod-lead"),
        ]
        assert all((h.model_name, h.model_version) == (model.name, model.version) for h in history)
        assert history[0].score == mine[3]["score"]
        timed = moderation_repo.feedback_history(session, report_id=mine[2]["id"])[0]
        assert timed.reviewed_at == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
        assert moderation_repo.feedback_history(session, report_id=other_id) == []

    # validation: nothing recorded from a rejected body
    for neither_or_both in (
        [{"id": mine[4]["id"], "report_id": "fb-4", "outcome": "actioned", "reviewer": "x"}],
        [{"outcome": "actioned", "reviewer": "x"}],
    ):
        resp = http.post(
            "/feedback", json=[{"id": mine[4]["id"], "outcome": "actioned", "reviewer": "x"}, *neither_or_both]
        )
        assert resp.status_code == 422
        (error,) = resp.json()["detail"]
        assert (error["type"], error["loc"]) == ("one_id", ["body", 1])
        assert error["msg"] == "give exactly one of id or report_id"
    for form, item in (("id", {"id": mine[4]["id"]}), ("report_id", {"report_id": "fb-4"})):
        resp = http.post("/feedback", json=[{**item, "outcome": "escalated", "reviewer": "x"}])
        assert [e["loc"] for e in resp.json()["detail"]] == [["body", 0, "outcome"]], form  # no union tag
    for bad in (
        [],
        [{"id": mine[4]["id"], "outcome": "escalated", "reviewer": "x"}],
        [{"id": mine[4]["id"], "outcome": "actioned", "reviewer": "x", "reviewed_at": "2026-11-27T09:00:00"}],
        [{"id": mine[4]["id"], "outcome": "actioned", "reviewer": "x"}] * 1001,
    ):
        assert http.post("/feedback", json=bad).status_code == 422
    assert mine[4]["id"] in {i["id"] for i in page_all(http, limit=500)}
