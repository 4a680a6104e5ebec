"""The model this process serves: loaded once from a model directory, sha256-checked and warmed up before use.

A model directory holds the artifact, ``schema.json`` and ``metadata.json`` (name, version, format, artifact,
sha256) — the layout ``reportscore train-reference`` writes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from reportscore.scoring import cache as score_cache
from reportscore.scoring.cache import ScoreCache, model_key
from reportscore.scoring.features import FeatureSchema, SchemaError
from reportscore.scoring.formats.base import (
    LoadedModel,
    ModelFormat,
    ModelLoadError,
    ModelUnavailableError,
    Scores,
)
from reportscore.scoring.formats.remote_v2 import RemoteOptions
from reportscore.scoring.formats.xgboost_native import XGBoostFormat
from reportscore.scoring.store import ArtifactStore, StoreUnavailableError
from reportscore.scoring.stores import open_store
from reportscore.settings import Settings
from reportscore.storage.db import Database

log = logging.getLogger(__name__)

FORMATS: dict[str, ModelFormat] = {"xgboost": XGBoostFormat()}
STORE_RETRY_S = 10.0


def formats_with(
    extra: list[str], *, trust_pickle: bool = False, compile_trees: bool = True, remote: RemoteOptions | None = None
) -> dict[str, ModelFormat]:
    """The built-in formats plus custom runtimes given as ``module:Class`` import paths."""
    import importlib

    from reportscore.scoring.formats.catalog import builtin_formats

    formats = builtin_formats(trust_pickle=trust_pickle, compile_trees=compile_trees, remote=remote)
    for path in extra:
        module_name, _, class_name = path.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ModelLoadError(f"extra model format {path!r} cannot be imported: {exc}") from exc
        fmt: ModelFormat = cls()
        formats[fmt.name] = fmt
    return formats


def formats_for(settings: Settings) -> dict[str, ModelFormat]:
    """The formats a process of these settings loads: built-in ones (configured by them) and the extra ones."""
    remote = RemoteOptions(
        connect_timeout_s=settings.remote_connect_timeout_s,
        timeout_s=settings.remote_timeout_s,
        batch_rows=settings.remote_batch_rows,
        retries=settings.remote_retries,
        backoff_base_s=settings.remote_backoff_base_s,
        backoff_max_s=settings.remote_backoff_max_s,
        breaker_failures=settings.remote_breaker_failures,
        breaker_reset_s=settings.remote_breaker_reset_s,
    )
    return formats_with(
        settings.extra_model_formats,
        trust_pickle=settings.trust_pickle,
        compile_trees=settings.compile_trees,
        remote=remote,
    )


@dataclass(frozen=True)
class ServingModel:
    """A loaded, verified and warmed-up model version."""

    name: str
    version: str
    format: str
    sha256: str
    schema: FeatureSchema
    model: LoadedModel
    loaded_at: datetime
    warmup_ms: float
    cache: ScoreCache | None = field(default=None, compare=False, repr=False)
    """Scores by (this version, encoded row), when the process has a score cache (``ModelRegistry`` attaches it)."""

    def score(self, columns: dict[str, Any]) -> Scores:
        """Encode columnar report fields with the schema and predict, in one vectorized call (the score cache's
        misses only, when there is one)."""
        matrix = self.schema.encode(columns)
        if self.cache is None:
            return self.model.predict(matrix)
        return self.cache.predict(model_key(self.name, self.version, self.sha256), matrix, self.model.predict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model_dir(model_dir: Path, *, threads: int = 1, formats: dict[str, ModelFormat] | None = None) -> ServingModel:
    """Load, verify (sha256, feature names) and warm up the model in ``model_dir``."""
    meta_path = model_dir / "metadata.json"
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{model_dir}: no metadata.json (is this a model directory?)") from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{meta_path}: not valid JSON ({exc})") from exc
    try:
        name, version, fmt_name = str(meta["name"]), str(meta["version"]), str(meta["format"])
        artifact = model_dir / str(meta["artifact"])
        expected_sha = str(meta["sha256"])
    except KeyError as exc:
        raise ModelLoadError(f"{meta_path}: missing key {exc}") from exc
    known = formats if formats is not None else FORMATS
    fmt = known.get(fmt_name)
    if fmt is None:
        raise ModelLoadError(f"{meta_path}: unknown format {fmt_name!r} (known: {', '.join(sorted(known))})")
    if not artifact.is_file():
        raise ModelLoadError(f"{artifact}: artifact missing")
    actual_sha = sha256_file(artifact)
    if actual_sha != expected_sha:
        raise ModelLoadError(f"{artifact.name}: sha256 {actual_sha} does not match metadata ({expected_sha})")
    try:
        schema = FeatureSchema.load(model_dir / "schema.json")
    except (FileNotFoundError, SchemaError) as exc:
        raise ModelLoadError(f"{model_dir}: bad or missing schema.json ({exc})") from exc
    loaded = fmt.load(artifact, threads=threads)
    if loaded.feature_names is not None and loaded.feature_names != schema.names:
        raise ModelLoadError(
            f"{artifact.name}: model features {loaded.feature_names} differ from schema.json {schema.names}"
        )
    t0 = time.perf_counter()
    _warm_up(loaded, schema)
    warmup_ms = (time.perf_counter() - t0) * 1000
    log.info("model loaded", extra={"model_name": name, "model_version": version, "warmup_ms": round(warmup_ms, 2)})
    return ServingModel(
        name=name,
        version=version,
        format=fmt_name,
        sha256=actual_sha,
        schema=schema,
        model=loaded,
        loaded_at=datetime.now(UTC),
        warmup_ms=warmup_ms,
    )


def _warm_up(model: LoadedModel, schema: FeatureSchema) -> None:
    """Score batches of 1 and 1,000 rows once, so the first request pays no lazy initialisation."""
    rng = np.random.default_rng(0)
    n = 1000
    columns: dict[str, Any] = {
        "abuse_type": rng.choice(np.array(["MSG", "PRF"], dtype=object), size=n),
        "report_text_len": rng.integers(0, 2000, size=n),
        "profile_rating": rng.uniform(0, 10, size=n),
        "popularity": rng.integers(0, 6, size=n),
        "lifetime_matches_created": rng.integers(0, 5000, size=n),
    }
    for rows in (1, n):
        scores = model.predict(schema.encode({k: v[:rows] for k, v in columns.items()}))
        if scores.shape != (rows,) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
            raise ModelLoadError("warm-up: the model did not return one finite score in 0..1 per row")


class ModelRegistry:
    """Holds the serving model of this process; swapping ``current`` is atomic for readers.

    ``refresh`` follows the champion recorded in the database: a new champion is loaded from the artifact store,
    its sha256 checked against the registry and warmed up before the switch; a version that fails to load leaves
    the current one serving (and is not retried until the champion changes again, unless the store was only
    unreachable: then it is tried again every ``STORE_RETRY_S``).
    """

    def __init__(
        self,
        current: ServingModel,
        *,
        store: ArtifactStore,
        formats: dict[str, ModelFormat] | None = None,
        cache: ScoreCache | None = None,
    ) -> None:
        self._cache = cache
        self._current = self._with_cache(current)
        self.store = store
        self._formats = formats
        self._failed: tuple[str, str] | None = None
        self._unreachable: tuple[str, str, float] | None = None  # (version, sha256, retry after, monotonic)
        self._lock = threading.Lock()

    @property
    def current(self) -> ServingModel:
        return self._current

    def swap(self, model: ServingModel) -> ServingModel:
        """Serve ``model`` from now on (jobs already handed to a worker finish with the old one); returns the old."""
        old, self._current = self._current, self._with_cache(model)
        return old

    def _with_cache(self, model: ServingModel) -> ServingModel:
        """``model`` scoring through this process's score cache (its entries are keyed by version)."""
        return model if self._cache is None or model.cache is self._cache else replace(model, cache=self._cache)

    def refresh(self, db: Database, *, name: str, threads: int) -> bool:
        """Switch to the database's champion if it changed; True when a switch happened."""
        from reportscore.storage.repositories import models as models_repo

        with db.read() as session:
            champ = models_repo.champion(session, name=name)
            if champ is None:
                return False
            version, sha256, uri = champ.version, champ.sha256, champ.artifact_uri
        current = self._current
        if (current.version, current.sha256) == (version, sha256) or self._failed == (version, sha256):
            return False
        waiting = self._unreachable
        if waiting is not None and waiting[:2] == (version, sha256) and time.monotonic() < waiting[2]:
            return False
        with self._lock:
            try:
                model_dir = self.store.model_dir(uri, sha256=sha256)
                loaded = load_model_dir(model_dir, threads=threads, formats=self._formats)
                if loaded.sha256 != sha256:
                    raise ModelLoadError(f"artifact sha256 {loaded.sha256} differs from the registry's {sha256}")
            except (StoreUnavailableError, ModelUnavailableError) as exc:  # tried again: it may come back
                self._unreachable = (version, sha256, time.monotonic() + STORE_RETRY_S)
                log.error(
                    "new champion not loaded: its store or endpoint is unreachable; the previous model keeps serving",
                    extra={"model_version": version, "retry_in_s": STORE_RETRY_S, "error": str(exc)[:500]},
                )
                return False
            except Exception as exc:
                self._failed = (version, sha256)
                log.error(
                    "new champion failed to load; the previous model keeps serving",
                    extra={"model_version": version, "error": str(exc)[:500]},
                )
                return False
            self._failed = self._unreachable = None
            old = self.swap(loaded)
        from reportscore.monitoring.metrics import note_serving_model

        note_serving_model(model_name=loaded.name, model_version=loaded.version)
        log.info(
            "champion switched",
            extra={"model_version": loaded.version, "previous_version": old.version, "warmup_ms": loaded.warmup_ms},
        )
        return True

    @classmethod
    def from_settings(cls, settings: Settings, db: Database | None = None) -> ModelRegistry:
        """The champion from the database when there is one, else the model directory of ``settings.model_path``."""
        formats = formats_for(settings)
        registry = cls(
            load_model_dir(settings.model_path, threads=settings.model_threads, formats=formats),
            store=open_store(settings),
            formats=formats,
            cache=score_cache.from_settings(settings),
        )
        if db is not None:
            registry.refresh(db, name=settings.model_name, threads=settings.model_threads)
        return registry


class ChampionWatcher:
    """A background thread that calls ``registry.refresh`` every ``interval_s``."""

    def __init__(self, registry: ModelRegistry, db: Database, *, name: str, threads: int, interval_s: float) -> None:
        self._registry = registry
        self._db = db
        self._name = name
        self._threads = threads
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="champion-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._registry.refresh(self._db, name=self._name, threads=self._threads)
            except Exception:
                log.warning("champion check failed", exc_info=True)


def load_version(*, db: Database, settings: Settings, version: str | None = None) -> ServingModel:
    """Load a registered version of ``settings.model_name`` (the champion when ``version`` is None) from the
    artifact store: sha256-checked against the registry and warmed up. ModelLoadError when it is not registered."""
    from reportscore.storage.repositories import models as models_repo

    name = settings.model_name
    with db.read() as session:
        row = (
            models_repo.champion(session, name=name)
            if version is None
            else models_repo.get_version(session, name=name, version=version)
        )
        if row is None:
            raise ModelLoadError(f"{name} {version or '(champion)'} is not registered (see `reportscore models list`)")
        uri, sha256 = row.artifact_uri, row.sha256
    formats = formats_for(settings)
    loaded = load_model_dir(
        open_store(settings).model_dir(uri, sha256=sha256), threads=settings.model_threads, formats=formats
    )
    if loaded.sha256 != sha256:
        raise ModelLoadError(f"artifact sha256 {loaded.sha256} differs from the registry's {sha256}")
    return loaded
