"""The synthetic report generator: deterministic, inside the field rules, plausible labels."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from reportscore.scoring.features import ABUSE_TYPES, INT32_MAX, REPORT_FIELDS, FeatureSchema
from reportscore.scoring.synthetic import (
    Columns,
    generate_labels,
    generate_reports,
    sample_reports,
    urgency_probability,
)

N = 50_000
SEED = 4242
INT_FIELDS = ("report_text_len", "popularity", "lifetime_matches_created")


@pytest.fixture(scope="module")
def columns() -> Columns:
    return generate_reports(N, seed=SEED)


def _assert_same_columns(a: Columns, b: Columns) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _check_report(report: dict[str, Any]) -> None:
    """The service's field rules, on one JSON-ready report (exact JSON types, no bools posing as ints)."""
    assert set(report) == set(REPORT_FIELDS)
    assert type(report["abuse_type"]) is str
    assert report["abuse_type"] in ABUSE_TYPES
    for name in INT_FIELDS:
        assert type(report[name]) is int, name
    assert 0 <= report["report_text_len"] <= INT32_MAX
    assert 0 <= report["popularity"] <= 5
    assert 0 <= report["lifetime_matches_created"] <= INT32_MAX
    assert type(report["profile_rating"]) is float
    assert math.isfinite(report["profile_rating"])


def test_reports_are_deterministic_by_seed() -> None:
    _assert_same_columns(generate_reports(2000, seed=7), generate_reports(2000, seed=7))
    other = generate_reports(2000, seed=8)
    assert not np.array_equal(generate_reports(2000, seed=7)["profile_rating"], other["profile_rating"])


def test_labels_are_deterministic_by_seed(columns: Columns) -> None:
    np.testing.assert_array_equal(generate_labels(columns, seed=1), generate_labels(columns, seed=1))
    assert not np.array_equal(generate_labels(columns, seed=1), generate_labels(columns, seed=2))


def test_columns_have_the_report_fields_and_dtypes(columns: Columns) -> None:
    assert tuple(columns) == REPORT_FIELDS
    assert all(len(v) == N for v in columns.values())
    assert columns["abuse_type"].dtype == object
    assert columns["profile_rating"].dtype == np.float64
    for name in INT_FIELDS:
        assert columns[name].dtype == np.int64, name


def test_every_value_satisfies_the_field_rules(columns: Columns) -> None:
    abuse = columns["abuse_type"]
    assert all(type(a) is str for a in abuse)
    assert set(abuse.tolist()) == set(ABUSE_TYPES)
    for name in ("report_text_len", "lifetime_matches_created"):
        assert columns[name].min() >= 0, name
        assert columns[name].max() <= INT32_MAX, name
    assert set(np.unique(columns["popularity"]).tolist()) == {0, 1, 2, 3, 4, 5}
    assert np.isfinite(columns["profile_rating"]).all()


def test_distributions_are_as_documented(columns: Columns) -> None:
    is_msg = columns["abuse_type"] == "MSG"
    assert is_msg.mean() == pytest.approx(0.60, abs=0.01)
    no_text = columns["report_text_len"] == 0
    assert no_text[is_msg].mean() == pytest.approx(0.15, abs=0.01)
    assert no_text[~is_msg].mean() == pytest.approx(0.45, abs=0.015)
    rating = columns["profile_rating"]
    assert rating.min() >= 0.0
    assert rating.max() <= 10.0
    assert np.median(rating) == pytest.approx(6.5, abs=0.05)
    matches = columns["lifetime_matches_created"]
    assert np.quantile(matches, 0.99) > 20 * np.median(matches)  # heavy tail


def test_positive_rate_is_plausible(columns: Columns) -> None:
    labels = generate_labels(columns, seed=SEED)
    assert labels.dtype == np.int8
    assert set(np.unique(labels).tolist()) == {0, 1}
    assert 0.10 <= labels.mean() <= 0.30


def test_labels_follow_the_urgency_rule(columns: Columns) -> None:
    labels = generate_labels(columns, seed=SEED)
    p = urgency_probability(columns)
    high = p >= np.quantile(p, 0.9)
    low = p <= np.quantile(p, 0.1)
    assert labels[high].mean() > 0.5
    assert labels[low].mean() < 0.05
    is_msg = columns["abuse_type"] == "MSG"
    assert labels[is_msg].mean() > labels[~is_msg].mean()


def test_urgency_probability_stays_in_0_1_for_extreme_values() -> None:
    extreme: Columns = {
        "abuse_type": np.array(["MSG", "PRF", "MSG"], dtype=object),
        "report_text_len": np.array([0, INT32_MAX, INT32_MAX], dtype=np.int64),
        "profile_rating": np.array([-1e300, 1e300, 0.0]),
        "popularity": np.array([5, 0, 5], dtype=np.int64),
        "lifetime_matches_created": np.array([INT32_MAX, 0, 0], dtype=np.int64),
    }
    p = urgency_probability(extreme)  # filterwarnings=error: an overflow warning would fail here
    assert np.isfinite(p).all()
    assert ((p >= 0.0) & (p <= 1.0)).all()


def test_sample_reports_are_json_ready_and_match_the_columns() -> None:
    reports = sample_reports(3000, seed=11)
    assert len(reports) == 3000
    for report in reports:
        _check_report(report)
    assert json.loads(json.dumps(reports)) == reports
    assert reports == sample_reports(3000, seed=11)
    schema = FeatureSchema.default()
    np.testing.assert_array_equal(schema.encode_reports(reports), schema.encode(generate_reports(3000, seed=11)))


def test_negative_n_is_rejected() -> None:
    with pytest.raises(ValueError, match="n must be"):
        generate_reports(-1, seed=0)
