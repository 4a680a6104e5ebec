"""The model lifecycle: register (validated before anything changes), promote, roll back, list and show.

A registered version is a model directory in the artifact store (artifact, ``schema.json``, ``metadata.json``,
``reference.json``) plus a row in ``model_versions``; the champion is the latest row of ``model_promotions``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring import store as artifact_store
from reportscore.scoring.features import REPORT_FIELDS, FeatureSchema, SchemaError
from reportscore.scoring.formats.base import ModelLoadError
from reportscore.scoring.registry import ServingModel, formats_for, load_model_dir, sha256_file
from reportscore.scoring.store import StoreError
from reportscore.scoring.stores import open_store
from reportscore.settings import Settings
from reportscore.storage.db import Database
from reportscore.storage.models import ModelVersion
from reportscore.storage.repositories import models as models_repo

VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
SYNTHETIC_REFERENCE_N = 20_000


class RegistrationError(ValueError):
    """The artifact, its schema or its reference sample was rejected; nothing was changed."""


class VersionExistsError(RegistrationError):
    """That version is already registered (versions are immutable)."""


class UnknownVersionError(LookupError):
    """No such registered version."""


class NothingToRollBackError(LookupError):
    """The promotion history has no earlier champion."""


@dataclass(frozen=True)
class ModelVersionView:
    name: str
    version: str
    format: str
    sha256: str
    size_bytes: int
    artifact_uri: str
    registered_at: datetime
    registered_by: str
    reference_source: str
    is_champion: bool
    metadata: dict[str, Any]
    feature_schema: dict[str, Any]
    reference: dict[str, Any]


def _view(row: ModelVersion, *, champion: str | None) -> ModelVersionView:
    return ModelVersionView(
        name=row.name,
        version=row.version,
        format=row.format,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        artifact_uri=row.artifact_uri,
        registered_at=row.registered_at,
        registered_by=row.registered_by,
        reference_source=row.reference_source,
        is_champion=row.version == champion,
        metadata=row.metadata_doc,
        feature_schema=row.feature_schema,
        reference=row.reference,
    )


def format_of(artifact: Path) -> str:
    from reportscore.scoring.formats.catalog import format_for_suffix

    name = format_for_suffix(artifact.name)
    if name is None:
        raise RegistrationError(
            f"{artifact.name}: unknown artifact type; expected .json/.ubj (XGBoost), .skops, .onnx, .keras, "
            ".pkl/.joblib (with REPORTSCORE_TRUST_PICKLE=true)"
        )
    return name


def _without(directory: Path, exc: BaseException) -> str:
    """The error's text without the private working directory in file names (the reason names the file only)."""
    return str(exc).replace(f"{directory}/", "")


def register_model(
    *,
    db: Database,
    settings: Settings,
    artifact: Path,
    version: str,
    schema: Path | None = None,
    reference: Path | None = None,
    format_name: str | None = None,
    by: str = "cli",
    extra_metadata: dict[str, Any] | None = None,
    reference_doc: dict[str, Any] | None = None,
) -> ModelVersionView:
    """Validate and register a new version. Raises ``RegistrationError`` (and changes nothing) when it is bad."""
    name = settings.model_name
    if not VERSION_PATTERN.match(version):
        raise RegistrationError(f"version {version!r}: use 1-64 letters, digits, '.', '_', '+' or '-'")
    if not artifact.is_file():
        raise RegistrationError(f"{artifact}: no such file")
    with db.read() as session:
        if models_repo.get_version(session, name=name, version=version) is not None:
            raise VersionExistsError(f"{name} {version} is already registered; versions are immutable")
    fmt = format_name or format_of(artifact)
    try:
        feature_schema = FeatureSchema.load(schema) if schema is not None else FeatureSchema.default()
    except (SchemaError, OSError) as exc:
        raise RegistrationError(f"feature schema rejected: {exc}") from exc

    store = open_store(settings)
    staging = store.staging_dir()
    try:
        artifact_name = f"model{''.join(artifact.suffixes[-1:])}"
        shutil.copyfile(artifact, staging / artifact_name)
        feature_schema.save(staging / "schema.json")
        sha256 = sha256_file(staging / artifact_name)
        metadata: dict[str, Any] = {
            **(extra_metadata or {}),
            "name": name,
            "version": version,
            "format": fmt,
            "artifact": artifact_name,
            "sha256": sha256,
            "source_file": artifact.name,
            "registered_at": datetime.now(UTC).isoformat(),
        }
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
        try:
            candidate = load_model_dir(staging, threads=settings.model_threads, formats=formats_for(settings))
        except ModelLoadError as exc:
            raise RegistrationError(f"artifact rejected: {_without(staging, exc)}") from exc
        except Exception as exc:  # a framework error while loading or warming up (wrong input width, ...)
            raise RegistrationError(f"artifact rejected: {type(exc).__name__}: {_without(staging, exc)}") from exc
        if reference_doc is not None:  # the distribution written at training time (the bundled model has one)
            ref_doc, ref_source = reference_doc, "training"
        else:
            ref_doc, ref_source = _reference(candidate, reference)
        (staging / "reference.json").write_text(json.dumps(ref_doc) + "\n")
        size_bytes = (staging / artifact_name).stat().st_size
        try:
            version_uri = store.publish(staging, name=name, version=version)
        except artifact_store.VersionExistsError as exc:
            raise VersionExistsError(f"{name} {version} is already registered in the model store: {exc}") from exc
    except BaseException:
        store.discard(staging)
        raise
    try:
        with db.write() as session:
            models_repo.insert_version(
                session,
                name=name,
                version=version,
                format=fmt,
                artifact_uri=f"{version_uri}/{artifact_name}",
                sha256=sha256,
                size_bytes=size_bytes,
                feature_schema=feature_schema.to_dict(),
                metadata_doc=metadata,
                reference=ref_doc,
                reference_source=ref_source,
                registered_at=datetime.now(UTC),
                registered_by=by,
            )
            row = models_repo.get_version(session, name=name, version=version)
            assert row is not None
            return _view(row, champion=None)
    except BaseException:
        if not _registered_elsewhere(db, name=name, version=version):
            store.unpublish(name=name, version=version)
        raise


def register_remote(
    *,
    db: Database,
    settings: Settings,
    url: str,
    version: str,
    schema: Path | None = None,
    reference: Path | None = None,
    output: str | None = None,
    output_column: int | None = None,
    input_name: str | None = None,
    by: str = "cli",
) -> ModelVersionView:
    """Register a model served by a V2 (Open Inference Protocol) endpoint, ``http://host:port/v2/models/NAME``.

    Its artifact is a descriptor of the endpoint, stored and checked like any other; the same validation applies:
    the endpoint must answer the warm-up and the reference sample with finite scores in 0..1 for the schema's
    features, or nothing is registered."""
    import tempfile

    from reportscore.scoring.formats.remote_v2 import Endpoint

    try:
        endpoint = Endpoint.parse_url(url, output_name=output, output_column=output_column, input_name=input_name)
    except ValueError as exc:
        raise RegistrationError(f"remote model {url}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="remote-") as tmp:
        descriptor = Path(tmp) / "remote.json"
        descriptor.write_text(json.dumps(endpoint.to_dict(), indent=2) + "\n")
        return register_model(
            db=db,
            settings=settings,
            artifact=descriptor,
            version=version,
            schema=schema,
            reference=reference,
            format_name="remote_v2",
            by=by,
            extra_metadata={"remote": endpoint.to_dict()},
        )


def _registered_elsewhere(db: Database, *, name: str, version: str) -> bool:
    """Whether a concurrent registration of the same version won the insert (then its files stay)."""
    try:
        with db.read() as session:
            return models_repo.get_version(session, name=name, version=version) is not None
    except Exception:
        return False


def _reference(model: ServingModel, sample: Path | None) -> tuple[dict[str, Any], str]:
    """Reference distribution of each feature and of the scores: from the team's sample, or synthetic."""
    from reportscore.scoring.synthetic import generate_reports
    from reportscore.scoring.training import build_reference

    if sample is None:
        columns: dict[str, Any] = generate_reports(SYNTHETIC_REFERENCE_N, seed=7)
        labels = None
        source = "synthetic"
    else:
        columns, labels = _read_sample(sample)
        source = "sample"
    try:
        scores = model.score(columns)
    except Exception as exc:  # a framework error, or a remote model that stopped answering
        raise RegistrationError(f"the model failed on the reference sample: {type(exc).__name__}: {exc}") from exc
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise RegistrationError("the model returned scores that are not finite numbers in 0..1 on the reference")
    doc = build_reference({k: np.asarray(columns[k]) for k in REPORT_FIELDS}, labels, scores, population=source)
    return doc, source


def _read_sample(path: Path) -> tuple[dict[str, Any], Any]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise RegistrationError(f"{path.name}: not a readable Parquet file ({exc})") from exc
    missing = [f for f in REPORT_FIELDS if f not in table.column_names]
    if missing:
        raise RegistrationError(f"{path.name}: reference sample lacks columns {missing}")
    if table.num_rows == 0:
        raise RegistrationError(f"{path.name}: reference sample is empty")
    columns = {f: table.column(f).to_numpy(zero_copy_only=False) for f in REPORT_FIELDS}
    labels = table.column("label").to_numpy() if "label" in table.column_names else None
    return columns, labels


def list_models(*, db: Database, settings: Settings) -> list[ModelVersionView]:
    with db.read() as session:
        champ = models_repo.champion(session, name=settings.model_name)
        current = champ.version if champ else None
        return [_view(r, champion=current) for r in models_repo.list_versions(session, name=settings.model_name)]


def show_model(*, db: Database, settings: Settings, version: str) -> ModelVersionView:
    with db.read() as session:
        row = models_repo.get_version(session, name=settings.model_name, version=version)
        if row is None:
            raise UnknownVersionError(f"{settings.model_name} {version} is not registered")
        champ = models_repo.champion(session, name=settings.model_name)
        return _view(row, champion=champ.version if champ else None)


def promote(*, db: Database, settings: Settings, version: str, by: str = "cli") -> ModelVersionView:
    """Make ``version`` the champion; every process switches within REPORTSCORE_MODEL_REFRESH_S."""
    name = settings.model_name
    with db.write() as session:
        row = models_repo.get_version(session, name=name, version=version)
        if row is None:
            raise UnknownVersionError(f"{name} {version} is not registered")
        champ = models_repo.champion(session, name=name)
        previous = champ.version if champ else None
        if previous != version:
            models_repo.insert_promotion(
                session,
                name=name,
                version=version,
                previous_version=previous,
                action="promote",
                at=datetime.now(UTC),
                by=by,
            )
        return _view(row, champion=version)


def rollback(*, db: Database, settings: Settings, by: str = "cli") -> ModelVersionView:
    """Restore the champion before the current one, from the promotion history."""
    name = settings.model_name
    with db.write() as session:
        history = models_repo.history(session, name=name)
        if not history or history[-1].previous_version is None:
            raise NothingToRollBackError(f"{name} has no earlier champion to roll back to")
        current, target = history[-1].version, history[-1].previous_version
        row = models_repo.get_version(session, name=name, version=target)
        assert row is not None
        # The previous_version of a rollback row is the version it replaced, so a second rollback undoes the
        # first — the history stays a plain, append-only list of who was champion when.
        models_repo.insert_promotion(
            session, name=name, version=target, previous_version=current, action="rollback", at=datetime.now(UTC), by=by
        )
        return _view(row, champion=target)


def ensure_champion(*, db: Database, settings: Settings) -> bool:
    """With an empty registry, register the model directory of ``settings.model_path`` and promote it.

    Returns True when it did. Safe to call from several processes: a lost race is not an error.
    """
    from sqlalchemy.exc import IntegrityError

    with db.read() as session:
        if models_repo.champion(session, name=settings.model_name) is not None:
            return False
    meta = json.loads((settings.model_path / "metadata.json").read_text())
    version = str(meta["version"])
    try:
        with db.read() as session:
            exists = models_repo.get_version(session, name=settings.model_name, version=version) is not None
        if not exists:
            reference = settings.model_path / "reference.json"
            register_model(
                db=db,
                settings=settings,
                artifact=settings.model_path / str(meta["artifact"]),
                version=version,
                schema=settings.model_path / "schema.json",
                reference_doc=json.loads(reference.read_text()) if reference.is_file() else None,
                format_name=str(meta["format"]),
                by="bootstrap",
                extra_metadata={k: v for k, v in meta.items() if k not in ("artifact", "sha256")},
            )
        promote(db=db, settings=settings, version=version, by="bootstrap")
    except (IntegrityError, RegistrationError, StoreError):  # another process registered it first
        with db.read() as session:
            if models_repo.champion(session, name=settings.model_name) is None:
                raise
        return False
    return True
