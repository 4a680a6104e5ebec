"""``reportscore train-reference``: the bundled reference model, trained reproducibly on synthetic reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from reportscore.cli.common import err


def train_reference(
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Where to write the model directory.", show_default="the bundled reference_model/ directory"),
    ] = None,
    n_reports: Annotated[int, typer.Option(help="Synthetic reports to generate (80% train, 20% holdout).")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic generator and of XGBoost.")] = 20261127,
    threads: Annotated[int, typer.Option(help="XGBoost training threads.")] = 2,
) -> None:
    """Train the reference XGBoost model on synthetic reports (reproducible) and write its model directory."""
    from reportscore.reference_model import REFERENCE_MODEL_DIR
    from reportscore.scoring.training import train_reference as train

    target = output_dir or REFERENCE_MODEL_DIR
    target.mkdir(parents=True, exist_ok=True)
    metrics = train(target, n_reports=n_reports, seed=seed, threads=threads, progress=sys.stderr.isatty())
    err.print(f"wrote {target}")
    typer.echo(json.dumps(metrics, indent=2, default=str))
