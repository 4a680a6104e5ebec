"""``reportscore train-reference``: the bundled reference model (XGBoost), or a small Keras network, trained
reproducibly on synthetic reports."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from reportscore.cli.common import err, fail


class Kind(enum.StrEnum):
    xgboost = "xgboost"
    keras = "keras"


def train_reference(
    kind: Annotated[
        Kind,
        typer.Option(help="xgboost: the bundled reference model. keras: a small network (needs the tensorflow extra)."),
    ] = Kind.xgboost,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the model directory (required for keras).",
            show_default="the bundled reference_model/ directory (xgboost)",
        ),
    ] = None,
    n_reports: Annotated[
        int | None,
        typer.Option(help="Synthetic reports (80% train, 20% holdout).", show_default="200000; keras 50000"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator and of the trainer.")] = 20261127,
    threads: Annotated[int, typer.Option(help="Training threads (XGBoost, or TensorFlow's pools).")] = 2,
    epochs: Annotated[int, typer.Option(help="Keras training epochs.")] = 4,
    version: Annotated[str, typer.Option(help="The version written into the Keras model's metadata.json.")] = "2.0.0",
) -> None:
    """Train a model on synthetic reports (reproducible) and write its model directory; prints the holdout metrics.

    The Keras network normalises its inputs inside the model and is saved in the safe .keras format: register it
    with `reportscore models register DIR/model.keras --version V --schema DIR/schema.json`."""
    progress = sys.stderr.isatty()
    if kind is Kind.keras:
        from reportscore.scoring.formats.base import ModelLoadError
        from reportscore.scoring.training_keras import DEFAULT_N_REPORTS, train_keras

        if output_dir is None:
            fail("--output-dir is required with --kind keras (the bundled directory holds the XGBoost model)")
        try:
            metrics = train_keras(
                output_dir,
                version=version,
                n_reports=n_reports or DEFAULT_N_REPORTS,
                epochs=epochs,
                seed=seed,
                threads=threads,
                progress=progress,
            )
        except (ModelLoadError, ValueError) as exc:
            fail(str(exc))
        err.print(f"wrote {output_dir}")
        typer.echo(json.dumps(metrics, indent=2))
        return

    from reportscore.reference_model import REFERENCE_MODEL_DIR
    from reportscore.scoring.training import DEFAULT_N_REPORTS as XGB_N_REPORTS
    from reportscore.scoring.training import train_reference as train

    target = output_dir or REFERENCE_MODEL_DIR
    target.mkdir(parents=True, exist_ok=True)
    metrics = train(target, n_reports=n_reports or XGB_N_REPORTS, seed=seed, threads=threads, progress=progress)
    err.print(f"wrote {target}")
    typer.echo(json.dumps(metrics, indent=2, default=str))
