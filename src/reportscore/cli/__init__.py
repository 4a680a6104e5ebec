"""The ``reportscore`` command line.

One module per command group; this module puts them on ``app`` in the order ``--help`` lists them.
"""

from __future__ import annotations

from reportscore.cli import bulk, distributed, export, serve, train
from reportscore.cli import drift as drift_cli
from reportscore.cli import purge as purge_cli
from reportscore.cli.common import app
from reportscore.cli.config import config_app
from reportscore.cli.keys import keys_app
from reportscore.cli.models import models_app

app.command()(serve.serve)
app.command()(distributed.worker)
app.command("worker-ping")(distributed.worker_ping)
app.command()(distributed.flower)
app.command()(serve.migrate)
app.command("train-reference")(train.train_reference)
app.command("local-cluster")(distributed.local_cluster)
app.command("score-file")(bulk.score_file)
app.command("export")(export.export)
app.command("drift")(drift_cli.drift)
app.command("purge")(purge_cli.purge)
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")

__all__ = ["app", "main"]


def main() -> None:
    app()
