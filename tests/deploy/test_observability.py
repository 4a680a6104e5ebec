"""deploy/prometheus and deploy/grafana: promtool accepts the scrape configuration and the alert rules, the alerts fire
on the situations they describe (``promtool test rules``), the Grafana dashboard is importable and its queries are
valid PromQL, and every metric they use is one reportscore declares."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reportscore.monitoring.metrics import DECLARED
from tests.conftest import require
from tests.deploy.manifests import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"
GRAFANA_DASHBOARD = DEPLOY / "grafana" / "reportscore.json"
BUILTIN_METRICS = {"up"}
"""Series Prometheus makes itself, which queries may use besides reportscore's."""
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    require(path is not None, "promtool is not installed (Debian package `prometheus`; .ci/run installs it)")
    assert path is not None
    return subprocess.run([path, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    return data


def panel_queries() -> list[tuple[int, str, str]]:
    """(panel id, refId, PromQL with Grafana's interval macros replaced)."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for macro, value in GRAFANA_MACROS.items():
                expr = expr.replace(macro, value)
            assert "$" not in expr, f"panel {panel['id']}: unknown Grafana variable in {expr}"
            out.append((panel["id"], target["refId"], expr))
    return out


# --- Prometheus -----------------------------------------------------------------------------------------------------
def test_promtool_accepts_the_scrape_config_and_its_rule_files() -> None:
    config = promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    rules = promtool("check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_scrape_config_covers_the_api_and_the_workers() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"reportscore-api", "reportscore-worker"}
    assert jobs["reportscore-api"]["dns_sd_configs"][0]["port"] == 8081
    from reportscore.settings import Settings

    assert (
        jobs["reportscore-worker"]["dns_sd_configs"][0]["port"] == Settings.model_fields["worker_metrics_port"].default
    )


SCORE_LATENCY = "reportscore_http_request_duration_seconds_bucket"

# Situations the alerts exist for, as promtool unit tests: input series (1-minute samples) and what must fire.
ALERT_CASES: list[dict[str, Any]] = [
    {
        "input_series": [
            {
                "series": 'reportscore_worker_up{job="reportscore-worker", instance="w:9810", runner="celery"}',
                "values": "2 2 0 0 0 0 0",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "ReportscoreNoWorkersUp", "exp_alerts": []},
            {
                "eval_time": "5m",
                "alertname": "ReportscoreNoWorkersUp",
                "exp_alerts": [{"exp_labels": {"severity": "page"}}],
            },
        ],
    },
    {  # no worker ever reported
        "input_series": [{"series": 'up{job="reportscore-api", instance="a:8081"}', "values": "1x10"}],
        "alert_rule_test": [
            {
                "eval_time": "3m",
                "alertname": "ReportscoreNoWorkersUp",
                "exp_alerts": [{"exp_labels": {"severity": "page"}}],
            },
            {"eval_time": "3m", "alertname": "ReportscoreTargetDown", "exp_alerts": []},
        ],
    },
    {
        "input_series": [
            {"series": 'up{job="reportscore-worker", instance="w:9810"}', "values": "1 1 0 0 0 0 0 0 0 0"},
        ],
        "alert_rule_test": [
            {
                "eval_time": "8m",
                "alertname": "ReportscoreTargetDown",
                "exp_alerts": [
                    {"exp_labels": {"severity": "ticket", "job": "reportscore-worker", "instance": "w:9810"}}
                ],
            },
        ],
    },
    {  # the oldest pending job ages by a minute every minute; two API instances report it
        "input_series": [
            {
                "series": 'reportscore_queue_oldest_pending_age_seconds{job="reportscore-api", instance="a1:8081"}',
                "values": "0+60x20",
            },
            {
                "series": 'reportscore_queue_oldest_pending_age_seconds{job="reportscore-api", instance="a2:8081"}',
                "values": "0+60x20",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "ReportscoreOldestPendingTooOld", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "ReportscoreOldestPendingTooOld",
                "exp_alerts": [{"exp_labels": {"severity": "page"}}],
            },
        ],
    },
    {
        "input_series": [
            {
                "series": 'reportscore_jobs_unfinished{job="reportscore-api", instance="a:8081", status="PENDING"}',
                "values": "50+20x40",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "25m",
                "alertname": "ReportscoreBacklogGrowing",
                "exp_alerts": [{"exp_labels": {"severity": "page"}}],
            },
        ],
    },
    {  # a large but stable backlog is being worked through: no alert
        "input_series": [
            {
                "series": 'reportscore_jobs_unfinished{job="reportscore-api", instance="a:8081", status="PENDING"}',
                "values": "500x40",
            },
        ],
        "alert_rule_test": [{"eval_time": "25m", "alertname": "ReportscoreBacklogGrowing", "exp_alerts": []}],
    },
    {
        "input_series": [
            {
                "series": 'reportscore_http_requests_total{method="POST", route="/predict", status="202"}',
                "values": "0+100x30",
            },
            {
                "series": 'reportscore_http_requests_total{method="POST", route="/predict", status="500"}',
                "values": "0+10x30",
            },
            {"series": 'reportscore_jobs_finished_total{status="SUCCESS"}', "values": "0+100x30"},
            {"series": 'reportscore_jobs_finished_total{status="FAILURE"}', "values": "0+5x30"},
            {
                "series": 'reportscore_model_predict_errors_total{model_version="2.0.0", source="queue"}',
                "values": "0+5x30",
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "ReportscoreHighErrorRate",
                "exp_alerts": [{"exp_labels": {"severity": "page"}}],
            },
            {
                "eval_time": "25m",
                "alertname": "ReportscoreJobFailures",
                "exp_alerts": [{"exp_labels": {"severity": "ticket"}}],
            },
            {
                "eval_time": "20m",
                "alertname": "ReportscoreModelPredictErrors",
                "exp_alerts": [{"exp_labels": {"severity": "ticket", "model_version": "2.0.0"}}],
            },
        ],
    },
    {  # every /score request takes between 0.5 and 1 s; jobs take between 60 and 120 s
        "input_series": [
            *(
                {
                    "series": f'{SCORE_LATENCY}{{method="POST", route="/score", status="200", le="{le}"}}',
                    "values": values,
                }
                for le, values in (("0.5", "0x40"), ("1.0", "0+10x40"), ("+Inf", "0+10x40"))
            ),
            *(
                {"series": f'reportscore_job_latency_seconds_bucket{{status="SUCCESS", le="{le}"}}', "values": values}
                for le, values in (("60.0", "0x40"), ("120.0", "0+10x40"), ("+Inf", "0+10x40"))
            ),
        ],
        "alert_rule_test": [
            {
                "eval_time": "25m",
                "alertname": "ReportscoreHighRequestLatencyP99",
                "exp_alerts": [{"exp_labels": {"severity": "ticket", "route": "/score"}}],
            },
            {
                "eval_time": "25m",
                "alertname": "ReportscoreHighJobLatencyP99",
                "exp_alerts": [{"exp_labels": {"severity": "ticket"}}],
            },
        ],
    },
    {
        "input_series": [
            {"series": 'reportscore_store_up{job="reportscore-api", instance="a:8081"}', "values": "1 1 0 0 0 0"}
        ],
        "alert_rule_test": [
            {
                "eval_time": "5m",
                "alertname": "ReportscoreStoreUnreachable",
                "exp_alerts": [{"exp_labels": {"severity": "page"}}],
            },
        ],
    },
    {  # profile_rating drifts past the alert threshold and stays there; the score's PSI stays below it
        "input_series": [
            {"series": 'reportscore_drift_psi_threshold{level="alert"}', "values": "0.25x50"},
            {"series": 'reportscore_drift_psi_threshold{level="warn"}', "values": "0.1x50"},
            {
                "series": 'reportscore_drift_psi{instance="a:8081", model_version="2.0.0", feature="profile_rating"}',
                "values": "0.02x5 0.4x45",
            },
            {
                "series": 'reportscore_drift_psi{instance="a:8081", model_version="2.0.0", feature="score"}',
                "values": "0.2x50",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "ReportscoreDrift", "exp_alerts": []},
            {
                "eval_time": "45m",
                "alertname": "ReportscoreDrift",
                "exp_alerts": [
                    {"exp_labels": {"severity": "ticket", "model_version": "2.0.0", "feature": "profile_rating"}}
                ],
            },
        ],
    },
    {  # a healthy service: nothing fires
        "input_series": [
            {"series": 'up{job="reportscore-api", instance="a:8081"}', "values": "1x40"},
            {
                "series": 'reportscore_worker_up{job="reportscore-worker", instance="w:9810", runner="celery"}',
                "values": "2x40",
            },
            {"series": 'reportscore_store_up{job="reportscore-api", instance="a:8081"}', "values": "1x40"},
            {
                "series": 'reportscore_queue_oldest_pending_age_seconds{job="reportscore-api", instance="a:8081"}',
                "values": "0x40",
            },
            {
                "series": 'reportscore_jobs_unfinished{job="reportscore-api", instance="a:8081", status="PENDING"}',
                "values": "0x40",
            },
            {
                "series": 'reportscore_http_requests_total{method="POST", route="/predict", status="202"}',
                "values": "0+100x40",
            },
            {"series": 'reportscore_jobs_finished_total{status="SUCCESS"}', "values": "0+100x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": rule["alert"], "exp_alerts": []} for rule in alert_rules()
        ],
    },
]


def test_alert_rules_fire_on_the_situations_they_describe(tmp_path: Path) -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # templated text; `promtool check rules` validates the templates
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", **case} for case in ALERT_CASES],
    }
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for case in ALERT_CASES[:-1] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested == {rule["alert"] for rule in alert_rules()}, "every alert has a case where it fires"


def test_every_alert_has_a_severity_summary_and_description() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert rule["alert"].startswith("Reportscore"), rule["alert"]


# --- Grafana --------------------------------------------------------------------------------------------------------
def test_grafana_dashboard_is_importable() -> None:
    board = dashboard()
    assert board["title"] == "reportscore"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", board["uid"])
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    assert "id" not in board or board["id"] is None, "an exported id would clash on import"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    ids: set[int] = set()
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert isinstance(panel["id"], int), panel["id"]
        assert panel["id"] not in ids, panel["id"]
        ids.add(panel["id"])
        assert panel["type"] in {"timeseries", "stat", "heatmap"}, panel["type"]
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"], panel["title"]


def test_grafana_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"grafana:panel_{pid}:{ref}", "expr": expr} for pid, ref, expr in panel_queries()]
    (tmp_path / "panels.yml").write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = promtool("check", "rules", "panels.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --- metric names ---------------------------------------------------------------------------------------------------
def undeclared(expr: str) -> list[str]:
    """Metric names in ``expr`` that reportscore does not export as queried (a bare histogram name selects nothing;
    a counter is queried by its ``_total`` name)."""
    wrong = []
    for token in set(re.findall(r"\breportscore_[a-z0-9_]+", expr)):
        info = DECLARED.get(token)
        if info is not None:
            if info.type == "histogram":
                wrong.append(token)
            continue
        base, _, suffix = token.rpartition("_")
        if not (suffix in ("bucket", "sum", "count") and base in DECLARED and DECLARED[base].type == "histogram"):
            wrong.append(token)
    for selector in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", expr):
        if not selector.startswith("reportscore_") and selector not in BUILTIN_METRICS:
            wrong.append(selector)
    return sorted(wrong)


@pytest.mark.parametrize(
    "source", ["alerts", "grafana"], ids=["deploy/prometheus/alerts.yml", "deploy/grafana/reportscore.json"]
)
def test_alerts_and_dashboard_use_only_declared_metrics(source: str) -> None:
    exprs = [rule["expr"] for rule in alert_rules()] if source == "alerts" else [e for _, _, e in panel_queries()]
    assert exprs
    for expr in exprs:
        assert not undeclared(expr), f"{undeclared(expr)} in: {expr}"
        assert re.search(r"\breportscore_|\bup\{", expr), f"uses no reportscore metric: {expr}"


def test_the_name_check_catches_mistakes() -> None:
    assert undeclared("rate(reportscore_jobs_finished[5m])") == ["reportscore_jobs_finished"]
    assert undeclared("reportscore_job_latency_seconds > 1") == ["reportscore_job_latency_seconds"]
    assert undeclared('rate(reportscore_http_requests_count{route="/x"}[1m])') == ["reportscore_http_requests_count"]
    assert undeclared('rate(node_cpu_seconds_total{mode="idle"}[1m])') == ["node_cpu_seconds_total"]
    assert undeclared("sum(rate(reportscore_job_latency_seconds_bucket[1m])) by (le)") == []
