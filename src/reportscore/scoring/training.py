"""Training of the bundled reference model on synthetic reports (``reportscore train-reference``).

:func:`train_reference` generates reports with :mod:`reportscore.scoring.synthetic`, trains an XGBoost classifier
on the first 80% of them, evaluates it on the last 20% (the holdout) and writes into ``output_dir``:

``model.ubj``
    The booster in XGBoost's native UBJSON format (``XGBClassifier.save_model``), carrying the schema's feature
    names; the service loads it with ``XGBoostFormat().load(path, threads=...)``.
``schema.json``
    ``FeatureSchema.default()`` (``FeatureSchema.save``).
``reference.json``
    Reference distributions on the holdout, for drift checks (PSI) of incoming reports and of served scores::

        {
          "version": 1,
          "population": "holdout",          # reports the model was not trained on
          "n": 40000,                       # number of holdout reports
          "positive_rate": 0.18,            # share of urgent labels in the holdout
          "fields": {                       # keyed by report field (abuse_type covers both one-hot columns)
            "abuse_type": {"kind": "categorical", "counts": {"MSG": 24012, "PRF": 15988},
                           "frequencies": {"MSG": 0.6003, "PRF": 0.3997}},
            "report_text_len": {            # same layout for every numeric field
              "kind": "numeric",
              "cut_points": [3.0, 14.0, ...],   # strictly increasing interior bin edges (deciles, deduplicated,
                                                # those <= the minimum dropped)
              "counts": [8011, 4003, ...],      # len(cut_points) + 1 bins, see "binning" below
              "quantiles": {"probabilities": [0.0, 0.01, ..., 1.0], "values": [...]},
              "mean": 97.4, "std": 210.1, "min": 0.0, "max": 5000.0
            }, ...
          },
          "scores": {                       # model scores on the holdout, 20 fixed bins on 0..1
            "bin_edges": [0.0, 0.05, ..., 1.0],
            "counts": [...],                # np.histogram(scores, bins=bin_edges): [e_i, e_i+1), last bin closed
            "quantiles": {"probabilities": [...], "values": [...]},
            "mean": 0.18
          },
          "binning": "..."                  # the numeric-field binning rule, spelled out
        }

    Numeric bins: bin ``i`` holds the values ``v`` with ``cut_points[i-1] <= v < cut_points[i]``; the first bin
    is unbounded below and the last unbounded above, so every finite value has a bin. In numpy:
    ``np.bincount(np.searchsorted(cut_points, v, side="right"), minlength=len(cut_points) + 1)``.
``metadata.json``
    Name, version, format, artifact file name and its sha256, creation time (ISO 8601 UTC), training parameters,
    generator seed and sizes, holdout metrics, library versions and the command that reproduces it.
``MODEL_CARD.md``
    Intended use, the synthetic data and urgency rule, features, metrics, limitations, how to replace it.

Training is deterministic: the same arguments give the same trees (XGBoost's ``hist`` method with no row or
column subsampling gives identical models for any thread count; ``random_state`` is pinned anyway).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sklearn.metrics import log_loss, roc_auc_score

from reportscore.scoring import synthetic
from reportscore.scoring.features import FeatureSchema
from reportscore.scoring.formats.base import LoadedModel
from reportscore.scoring.formats.xgboost_native import XGBoostFormat

MODEL_NAME = "reportscore-reference"
MODEL_VERSION = "1.0.0"
MODEL_FORMAT = "xgboost"
ARTIFACT_NAME = "model.ubj"
SCHEMA_NAME = "schema.json"
REFERENCE_NAME = "reference.json"
METADATA_NAME = "metadata.json"
MODEL_CARD_NAME = "MODEL_CARD.md"

DEFAULT_N_REPORTS = 200_000
DEFAULT_SEED = 20261127
DEFAULT_THREADS = 2
HOLDOUT_FRACTION = 0.2
MIN_REPORTS = 1000
N_ESTIMATORS = 200
MAX_DEPTH = 6
LEARNING_RATE = 0.1
"""Pinned below XGBoost's default 0.3: with 200 rounds on noisy labels 0.3 overfits (holdout AUC ~0.007 lower)."""

SCORE_BINS = 20
QUANTILE_PROBABILITIES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
DECILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
BINNING_RULE = (
    "numeric fields: counts[i] = number of values v with cut_points[i-1] <= v < cut_points[i], the first bin "
    "unbounded below and the last unbounded above; in numpy: np.bincount(np.searchsorted(cut_points, v, "
    "side='right'), minlength=len(cut_points) + 1). scores: np.histogram(scores, bins=bin_edges), bins "
    "[e_i, e_i+1) with the last bin closed."
)
REPRODUCE_COMMAND = "reportscore train-reference"

Array = npt.NDArray[Any]


def train_reference(
    output_dir: Path,
    *,
    n_reports: int = DEFAULT_N_REPORTS,
    seed: int = DEFAULT_SEED,
    threads: int = DEFAULT_THREADS,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the reference model on synthetic reports and write its artifacts into ``output_dir``.

    Returns the holdout metrics (the ``metrics`` object of ``metadata.json``): ``holdout_roc_auc``,
    ``holdout_log_loss``, ``holdout_positive_rate``, ``holdout_mean_score``, ``train_positive_rate``.
    """
    if n_reports < MIN_REPORTS:
        raise ValueError(f"n_reports must be at least {MIN_REPORTS}, got {n_reports}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    output_dir.mkdir(parents=True, exist_ok=True)
    schema = FeatureSchema.default()
    n_holdout = round(n_reports * HOLDOUT_FRACTION)
    n_train = n_reports - n_holdout
    params: dict[str, Any] = {
        "n_estimators": N_ESTIMATORS,
        "max_depth": MAX_DEPTH,
        "learning_rate": LEARNING_RATE,
        "tree_method": "hist",
        "objective": "binary:logistic",
        "random_state": seed,
        "n_jobs": threads,
    }

    started = time.perf_counter()
    with progress_display(enabled=progress) as display:
        phases = display.add_task("Training the reference model", total=5)

        display.update(phases, description=f"Generating {n_reports:,} synthetic reports")
        columns = synthetic.generate_reports(n_reports, seed=seed)
        labels = synthetic.generate_labels(columns, seed=seed)
        display.advance(phases)

        display.update(phases, description="Encoding with FeatureSchema.default()")
        matrix = schema.encode(columns)
        x_train, x_holdout = matrix[:n_train], matrix[n_train:]
        y_train, y_holdout = labels[:n_train], labels[n_train:]
        holdout_columns = {name: values[n_train:] for name, values in columns.items()}
        display.advance(phases)

        display.update(phases, description="Boosting")
        rounds = display.add_task("Boosting rounds", total=N_ESTIMATORS)
        classifier = xgboost.XGBClassifier(**params, callbacks=[_RoundProgress(display, rounds)])
        classifier.fit(x_train, y_train, verbose=False)
        booster = classifier.get_booster()
        booster.feature_names = schema.names
        display.advance(phases)

        display.update(phases, description="Writing model and schema")
        artifact = output_dir / ARTIFACT_NAME
        classifier.save_model(artifact)
        schema.save(output_dir / SCHEMA_NAME)
        training_seconds = time.perf_counter() - started
        display.advance(phases)

        display.update(phases, description="Evaluating the holdout")
        # Score through the service's loading path, so the metrics are those of the artifact as served.
        model = XGBoostFormat().load(artifact, threads=threads)
        metrics, reference = evaluate_holdout(output_dir, model, x_holdout, y_holdout, holdout_columns)
        metrics["train_positive_rate"] = float(y_train.mean())
        metadata = {
            "name": MODEL_NAME,
            "version": MODEL_VERSION,
            "format": MODEL_FORMAT,
            "artifact": ARTIFACT_NAME,
            "sha256": sha256_file(artifact),
            "schema": SCHEMA_NAME,
            "reference": REFERENCE_NAME,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "synthetic": True,
            "description": "Stand-in urgency model trained on synthetic reports; see MODEL_CARD.md.",
            "feature_names": schema.names,
            "training": {
                "estimator": "xgboost.XGBClassifier",
                "params": params,
                "training_seconds": round(training_seconds, 3),
            },
            "data": {
                "generator": synthetic.__name__,
                "seed": seed,
                "n_reports": n_reports,
                "n_train": n_train,
                "n_holdout": n_holdout,
                "split": f"first {n_train} generated reports train, last {n_holdout} holdout",
            },
            "metrics": metrics,
            "xgboost_version": xgboost.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "reproduce": REPRODUCE_COMMAND,
            "reproduce_python": _reproduce_call(n_reports=n_reports, seed=seed, threads=threads),
        }
        write_json(output_dir / METADATA_NAME, metadata)
        (output_dir / MODEL_CARD_NAME).write_text(render_model_card(metadata, reference, schema))
        display.advance(phases)
        display.update(phases, description=f"Done: holdout ROC AUC {metrics['holdout_roc_auc']:.4f}")
    return metrics


def evaluate_holdout(
    output_dir: Path, model: LoadedModel, x_holdout: Array, y_holdout: Array, holdout_columns: dict[str, Array]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score the holdout with the model as the service loaded it, write its ``reference.json`` into
    ``output_dir``, and return the holdout metrics (ROC AUC, log loss, positive rate, mean score) and the
    reference document."""
    scores = model.predict(x_holdout)
    metrics = {
        "holdout_roc_auc": float(roc_auc_score(y_holdout, scores)),
        "holdout_log_loss": float(log_loss(y_holdout, scores, labels=[0, 1])),
        "holdout_positive_rate": float(y_holdout.mean()),
        "holdout_mean_score": float(scores.mean()),
    }
    reference = build_reference(holdout_columns, y_holdout, scores)
    write_json(output_dir / REFERENCE_NAME, reference)
    return metrics, reference


# --- reference distributions ---------------------------------------------------------------------------------


def build_reference(
    columns: dict[str, Array], labels: Array | None, scores: Array, *, population: str = "holdout"
) -> dict[str, Any]:
    """The ``reference.json`` document (layout in the module docstring) for one population (labels optional)."""
    fields: dict[str, Any] = {}
    for name, values in columns.items():
        if name == "abuse_type":
            cats, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
            total = int(counts.sum())
            fields[name] = {
                "kind": "categorical",
                "counts": {str(c): int(k) for c, k in zip(cats, counts, strict=True)},
                "frequencies": {str(c): int(k) / total for c, k in zip(cats, counts, strict=True)},
            }
        else:
            fields[name] = _numeric_reference(np.asarray(values, dtype=np.float64))
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    score_counts, _ = np.histogram(scores, bins=edges)
    return {
        "version": 1,
        "population": population,
        "n": len(scores),
        "positive_rate": float(np.mean(labels)) if labels is not None else None,
        "fields": fields,
        "scores": {
            "bin_edges": [float(e) for e in edges],
            "counts": [int(c) for c in score_counts],
            "quantiles": _quantiles(np.asarray(scores, dtype=np.float64)),
            "mean": float(np.mean(scores)),
        },
        "binning": BINNING_RULE,
    }


def _numeric_reference(values: npt.NDArray[np.float64]) -> dict[str, Any]:
    lowest = float(values.min())
    cuts = np.unique(np.quantile(values, DECILES))
    cuts = cuts[cuts > lowest]
    counts = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
    return {
        "kind": "numeric",
        "cut_points": [float(c) for c in cuts],
        "counts": [int(c) for c in counts],
        "quantiles": _quantiles(values),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": lowest,
        "max": float(values.max()),
    }


def _quantiles(values: npt.NDArray[np.float64]) -> dict[str, list[float]]:
    q = np.quantile(values, QUANTILE_PROBABILITIES)
    return {"probabilities": list(QUANTILE_PROBABILITIES), "values": [float(v) for v in q]}


# --- model card ----------------------------------------------------------------------------------------------


def render_model_card(metadata: dict[str, Any], reference: dict[str, Any], schema: FeatureSchema) -> str:
    """``MODEL_CARD.md`` from the metadata, the holdout reference and the generator's constants."""
    s = synthetic
    m = metadata["metrics"]
    data = metadata["data"]
    params = metadata["training"]["params"]
    popularity_p = ", ".join(f"{p:.2f}" for p in s.POPULARITY_P)
    fields = reference["fields"]

    def summary(name: str) -> str:
        q = dict(zip(fields[name]["quantiles"]["probabilities"], fields[name]["quantiles"]["values"], strict=True))
        return f"median {q[0.5]:.4g}, p99 {q[0.99]:.4g}, max {q[1.0]:,.0f}"

    freq = fields["abuse_type"]["frequencies"]
    feature_rows = "\n".join(
        f"| {i} | `{f.name}` | `{f.source}` | "
        + (f"1.0 if `{f.source}` == `{f.category}` else 0.0" if f.encoding == "one_hot" else "value as float32")
        + " |"
        for i, f in enumerate(schema.features)
    )
    return f"""# Model card: {metadata["name"]} {metadata["version"]}

> **This is a synthetic stand-in.** It was trained on reports produced by a random generator
> (`{data["generator"]}`), not on real moderation data. Its scores rank reports by a made-up urgency rule.
> It exists so the service can be built, tested, benchmarked and monitored end to end until the
> data-science team ships a model trained on real labels. Do not use it to prioritise real reports.

## Intended use

Scores an abuse report with the probability (0..1) that it is urgent, so moderators see the most urgent
reports first. Input: the five report fields below. Output: one probability per report. Bundled with
`reportscore` as the default model (`REPORTSCORE_MODEL_PATH` unset).

## Model

| | |
|---|---|
| format | XGBoost native UBJSON (`{metadata["artifact"]}`), objective `binary:logistic` |
| sha256 | `{metadata["sha256"]}` |
| estimator | `xgboost.XGBClassifier`, `n_estimators={params["n_estimators"]}`, \
`max_depth={params["max_depth"]}`, `learning_rate={params["learning_rate"]}`, `tree_method="{params["tree_method"]}"`, \
`random_state={params["random_state"]}` |
| trained with | xgboost {metadata["xgboost_version"]}, numpy {metadata["numpy_version"]}, \
Python {metadata["python_version"]} |

## Features and encoding

Encoding is fixed by `schema.json` (`FeatureSchema.default()`), never inferred from a batch: a batch of only
`MSG` reports still gets both `abuse_type_*` columns. Column order:

| # | column | report field | encoding |
|---|---|---|---|
{feature_rows}

The booster carries these feature names, so a loader can check the artifact against the schema.

## Training data (synthetic)

{data["n_reports"]:,} reports from `generate_reports(n, seed={data["seed"]})`; labels from
`generate_labels(columns, seed={data["seed"]})`. The first {data["n_train"]:,} reports train the model, the last
{data["n_holdout"]:,} are the holdout (rows are independent draws, so a contiguous split is unbiased).

| field | distribution | holdout |
|---|---|---|
| `abuse_type` | `"MSG"` with probability {s.P_MSG:.2f}, else `"PRF"` | MSG {freq.get("MSG", 0.0):.1%}, \
PRF {freq.get("PRF", 0.0):.1%} |
| `report_text_len` | 0 (no text) with probability {s.P_NO_TEXT["MSG"]:.2f} for MSG and \
{s.P_NO_TEXT["PRF"]:.2f} for PRF; otherwise `round(lognormal(log {np.exp(s.TEXT_LEN_LOG_MEDIAN):g}, \
{s.TEXT_LEN_SIGMA:g}))` clipped to 1..{s.TEXT_LEN_MAX} | {summary("report_text_len")} |
| `profile_rating` | `normal({s.RATING_MEAN:g}, {s.RATING_SD:g})` clipped to \
{s.RATING_MIN:g}..{s.RATING_MAX:g} (always finite) | {summary("profile_rating")} |
| `popularity` | categorical on 0..5 with probabilities {popularity_p} | {summary("popularity")} |
| `lifetime_matches_created` | 0 (new account) with probability {s.P_NO_MATCHES:.2f}; otherwise \
`floor(lognormal(log {np.exp(s.MATCHES_LOG_MEDIAN):g} + {s.MATCHES_POPULARITY_SLOPE:g} * popularity, \
{s.MATCHES_SIGMA:g}))`, heavy-tailed | {summary("lifetime_matches_created")} |

### Urgency rule

A latent log-odds score `z` (`synthetic.urgency_logit`):

```
z = {s.URGENCY_INTERCEPT:g}
    + {s.URGENCY_MSG:g} * [abuse_type == MSG]                        messages reach the victim directly
    + {s.URGENCY_TEXT_LOG:g} * (log1p(report_text_len) - 4)               longer reports are more specific
    {_signed(s.URGENCY_NO_TEXT)} * [report_text_len == 0]                     no text at all: hard to act on
    + {s.URGENCY_LONG_MSG:g} * [abuse_type == MSG and report_text_len >= {s.LONG_MSG_LEN}]   long message reports
    + {s.URGENCY_POPULARITY:g} * popularity                                 popular profiles reach more users
    {_signed(s.URGENCY_MATCHES_LOG)} * (log1p(lifetime_matches_created) - 3)      few matches: new / throwaway account
    {_signed(s.URGENCY_RATING)} * (profile_rating - {s.RATING_MEAN:g})                    low-rated profiles
```

label = `Bernoulli(sigmoid(z))`, then flipped with probability {s.LABEL_FLIP_P:g} (moderator mistakes).

## Holdout metrics

| metric | value |
|---|---|
| ROC AUC | {m["holdout_roc_auc"]:.4f} |
| log loss | {m["holdout_log_loss"]:.4f} |
| positive rate (labels) | {m["holdout_positive_rate"]:.2%} |
| mean score | {m["holdout_mean_score"]:.4f} |
| positive rate (training labels) | {m["train_positive_rate"]:.2%} |

`reference.json` holds the holdout distribution of every field and of the scores (PSI-ready bins) as the
baseline for drift monitoring.

## Limitations

- Synthetic data: the urgency rule is invented; the ranking says nothing about real reports. The metrics only
  show that the model learns the generator's rule, not that it is useful for moderation.
- The generator has no report text, reporter history, time or language; real urgency depends on those.
- Values outside the synthetic ranges (e.g. `report_text_len` above {s.TEXT_LEN_MAX}, ratings outside
  {s.RATING_MIN:g}..{s.RATING_MAX:g}) are scored as the nearest seen value; trees do not extrapolate.
- No fairness, calibration-over-time or adversarial evaluation was done.

## How to reproduce

```
{REPRODUCE_COMMAND}
```

which calls `{metadata["reproduce_python"]}`. Same arguments, same library versions: same trees
(predictions equal to 1e-6, checked by `tests/unit/test_reference_model.py`).

## How the data-science team replaces it

Ship a directory with the same files: an XGBoost binary-logistic model (`model.ubj` or `.json`) whose feature
names equal the column names in `schema.json`, that `schema.json`, a `metadata.json` (name, version, format,
artifact, sha256 of the artifact, metrics) and, for drift monitoring, a `reference.json` computed on real
holdout data in the layout documented in `reportscore.scoring.training`. Point `REPORTSCORE_MODEL_PATH` at the
directory (or replace `src/reportscore/reference_model/` to change the default) and restart the service.
"""


def _signed(value: float) -> str:
    return f"- {abs(value):g}" if value < 0 else f"+ {value:g}"


# --- helpers -------------------------------------------------------------------------------------------------


class _RoundProgress(xgboost.callback.TrainingCallback):
    """Advances a rich progress bar once per boosting round."""

    def __init__(self, display: Progress, task: TaskID) -> None:
        super().__init__()
        self._display = display
        self._task = task

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self._display.advance(self._task)
        return False  # never stop early


@contextmanager
def progress_display(*, enabled: bool) -> Iterator[Progress]:
    columns = (
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False) as display:
        yield display


def _reproduce_call(*, n_reports: int, seed: int, threads: int) -> str:
    call = "reportscore.scoring.training.train_reference(output_dir"
    if n_reports != DEFAULT_N_REPORTS:
        call += f", n_reports={n_reports}"
    if seed != DEFAULT_SEED:
        call += f", seed={seed}"
    if threads != DEFAULT_THREADS:
        call += f", threads={threads}"
    return call + ")"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")
