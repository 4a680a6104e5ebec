"""The one settings object. Every field is read from ``REPORTSCORE_<NAME>`` and documented where it is declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reportscore.reference_model import REFERENCE_MODEL_DIR
from reportscore.security.secret_rules import placeholder_secret_problem, redact_url
from reportscore.settings_checks import ConfigurationError, check_combination

__all__ = ["ConfigurationError", "Settings", "placeholder_secret_problem"]


class Settings(BaseSettings):
    """Effective configuration of one reportscore process."""

    model_config = SettingsConfigDict(
        env_prefix="REPORTSCORE_", extra="forbid", validate_default=True, use_attribute_docstrings=True
    )

    host: str = "127.0.0.1"
    """Address the HTTP API binds to."""

    port: int = Field(default=8081, ge=1, le=65535)
    """TCP port of the HTTP API."""

    api_processes: int = Field(default=1, ge=1)
    """Number of API processes serving the port. Embedded mode (SQLite) allows exactly one."""

    data_dir: Path = Path("data")
    """Directory for the SQLite database (embedded mode) and other local state."""

    database_url: str | None = None
    """SQLAlchemy URL of the store. Unset: ``sqlite:///<data_dir>/reportscore.db`` (embedded mode)."""

    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    """SQLite ``PRAGMA synchronous``. FULL (default) makes every commit durable before ``202`` is answered."""

    sqlite_busy_timeout_s: float = Field(default=10.0, gt=0)
    """How long a SQLite writer waits for the write lock before failing."""

    sqlite_wal_autocheckpoint_pages: int = Field(default=16000, ge=100)
    """SQLite ``PRAGMA wal_autocheckpoint`` in 4 KiB pages (SQLite's default is 1000). A checkpoint copies every page
    changed since the last one back into the database file; a larger WAL (this default lets it reach ~64 MiB) copies
    an index page changed by many commits once instead of once per few commits."""

    database_max_connections: int = Field(default=10, ge=1, le=1000)
    """PostgreSQL: the most connections one process (API process or worker) opens, all kept for reuse (opened on
    demand). Size the server so that (API processes + worker processes) x this stays below its ``max_connections``
    (docs/deployment.md)."""

    database_pool_timeout_s: float = Field(default=10.0, gt=0)
    """PostgreSQL: how long a request waits for one of the process's connections when all are in use, before it is
    answered ``503`` (store busy) and retried by the client."""

    model_name: str = Field(default="reportscore-reference", min_length=1, max_length=128)
    """The served model. It has many registered versions; the latest promotion names the champion."""

    model_store_url: str | None = None
    """Where registered artifacts live, reachable by every process: ``file:///shared/volume/models`` (a local
    directory or a volume every process mounts) or ``s3://bucket/prefix`` (an S3-compatible bucket; credentials
    from the standard AWS environment: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` or the
    instance's role). Unset: ``file://<data_dir>/models``. See docs/model-store.md."""

    model_store_endpoint_url: str | None = None
    """``s3://`` stores: the endpoint of an S3-compatible service other than AWS, with its scheme
    (``http://minio:9000``, ``https://ceph.internal``). Unset: AWS S3."""

    model_store_region: str | None = None
    """``s3://`` stores: the bucket's region. Unset: ``AWS_REGION``/``AWS_DEFAULT_REGION`` or the AWS config
    file, else ``us-east-1``."""

    model_cache_dir: Path | None = None
    """``s3://`` stores: local directory where each process keeps the versions it downloaded (verified against
    their sha256 on every load), and where registration stages uploads. Must be writable. Unset:
    ``<data_dir>/model-cache``."""

    model_refresh_s: float = Field(default=2.0, gt=0)
    """How often each process checks for a new champion; it then loads, verifies and warms it before switching."""

    max_shadows: int = Field(default=3, ge=0, le=10)
    """At most this many registered versions shadow the champion at once (each adds one model call per batch)."""

    shadow_max_pending_batches: int = Field(default=8, ge=1)
    """Scored batches waiting for the shadows in each process; beyond this a shadow that fell behind skips batches
    (counted by ``reportscore_shadow_skipped_reports_total``) instead of growing a queue."""

    shadow_max_busy_share: float = Field(default=0.2, gt=0, le=1)
    """Each process's shadow thread is busy at most this share of the time: it scores every batch waiting at once,
    then rests t x (1/share - 1) after a pass that took t seconds. Under light load it keeps up; at full load it skips
    batches (counted) rather than take the champion's CPU or writer. 1 turns the limit off."""

    compare_max_reports: int = Field(default=200_000, ge=1000)
    """A comparison keeps at most this many paired reports (a fixed-seed reservoir sample beyond it) for its rank
    statistics; sums, means, extremes and histograms always cover every report."""

    compare_bootstrap_resamples: int = Field(default=1000, ge=100, le=10_000)
    """Paired bootstrap resamples for a comparison's confidence intervals (fixed seed, so results repeat)."""

    model_path: Path = REFERENCE_MODEL_DIR
    """Model directory (artifact + ``schema.json`` + ``metadata.json``) registered and promoted as the first
    champion when the registry is empty. Defaults to the bundled reference model."""

    extra_model_formats: list[str] = Field(default_factory=list)
    """Custom model runtimes to load besides the built-in formats, as ``module:Class`` import paths (a class with
    ``name``, ``suffixes`` and ``load(path, threads=…)``, see ``reportscore.scoring.formats.base.ModelFormat``).
    Only list code you trust: it runs inside every process. Env: a JSON list."""

    trust_pickle: bool = False
    """Allow model artifacts in pickle/joblib format. They can run arbitrary code when loaded: only for artifacts
    you built yourself. Off by default; every load logs a warning."""

    model_threads: int = Field(default=1, ge=1)
    """Threads one model call may use. Keep processes x threads <= cores to avoid oversubscription."""
    compile_trees: bool = True
    """Score XGBoost boosters with ONNX Runtime's tree ensemble when it reproduces them to 1e-6 on probe rows (~25x
    cheaper per call for a few rows; see ``scoring/formats/tree_compiler.py``). Off: XGBoost predicts."""

    score_cache_size: int = Field(default=0, ge=0)
    """Scores each process keeps in memory, keyed by model version and the report's encoded features (least recently
    used dropped first; about 250 bytes each). A report seen again is answered without a model call; a promotion or
    rollback never returns another version's score (the version is in the key). 0: off (the default, see
    docs/performance.md: it only pays when the same reports come back)."""

    score_cache_redis: bool = False
    """Also share cached scores between processes through Redis (REPORTSCORE_REDIS_URL, keys under
    REPORTSCORE_REDIS_PREFIX), one MGET and one pipelined SET per model call. A Redis failure never fails scoring:
    it is counted (``reportscore_score_cache_redis_errors_total``) and the cache's Redis tier is skipped for 5 s."""

    score_cache_ttl_s: int = Field(default=3600, ge=1)
    """Lifetime of a score cached in Redis (the in-process tier is bounded by size instead)."""

    remote_connect_timeout_s: float = Field(default=2.0, gt=0)
    """A model served by a V2 endpoint (``models register --remote``): how long connecting to it may take."""

    remote_timeout_s: float = Field(default=10.0, gt=0)
    """A model served by a V2 endpoint: how long one inference request may take (reading, writing, pool wait)."""

    remote_batch_rows: int = Field(default=1000, ge=1)
    """A model served by a V2 endpoint: the most rows sent in one inference request (larger calls are split)."""

    remote_retries: int = Field(default=2, ge=0)
    """A model served by a V2 endpoint: a request that failed (refused, timed out, HTTP 408/429/5xx) is sent again
    this many more times, after exponential backoff; then the jobs are retried later (up to max_attempts)."""

    remote_backoff_base_s: float = Field(default=0.2, gt=0)
    """A model served by a V2 endpoint: the wait before the first resend; it doubles each time, up to
    remote_backoff_max_s."""

    remote_backoff_max_s: float = Field(default=2.0, gt=0)
    """A model served by a V2 endpoint: the longest wait between two sends of a request."""

    remote_breaker_failures: int = Field(default=5, ge=1)
    """A model served by a V2 endpoint: after this many consecutive failed requests (each after its resends) the
    circuit breaker opens: calls fail at once, without waiting for the endpoint, for remote_breaker_reset_s."""

    remote_breaker_reset_s: float = Field(default=10.0, gt=0)
    """A model served by a V2 endpoint: how long an open circuit breaker fails calls before letting one probe
    request through (its success closes the breaker, its failure opens it again)."""

    worker_threads: int = Field(default=2, ge=1)
    """Embedded mode: scoring threads inside the API process."""

    batch_max_reports: int = Field(default=4096, ge=1)
    """Micro-batching: a worker gathers queued jobs into one model call up to this many reports."""

    fast_path: bool = True
    """Answer the common case of the hot routes (POST /predict, /submit, /score, GET /task/{id}) without the web
    framework's per-request machinery (same checks, answers and logs; anything unusual goes through FastAPI).
    false: every request goes through FastAPI."""

    batch_wait_ms: float = Field(default=0.0, ge=0)
    """Micro-batching: once a request or job is queued, wait at most this long for more to join its model call.
    0: no waiting; a model call takes everything that queued while the previous one ran (batches still grow with
    load, and a lone request is not held back)."""

    worker_batch_max_jobs: int = Field(default=64, ge=1)
    """Distributed mode: a worker woken by one message also claims up to this many other pending jobs
    (``FOR UPDATE SKIP LOCKED``) and scores them all in one model call."""

    publish_max_jobs_per_message: int = Field(default=16, ge=1)
    """Distributed mode: jobs an API process has committed at the same moment travel to the workers in one broker
    message of up to this many job ids (and up to ``batch_max_reports`` reports), instead of one message each."""

    max_attempts: int = Field(default=3, ge=1)
    """A job whose scoring was started this many times without finishing (its process died) ends FAILURE."""

    max_pending_jobs: int = Field(default=10_000, ge=1)
    """Backpressure: when this many jobs are accepted but not finished, POST answers 503 with Retry-After."""

    retry_after_s: int = Field(default=1, ge=1)
    """Value of the Retry-After header on a 503 from backpressure."""

    max_reports_per_request: int = Field(default=10_000, ge=1)
    """Largest number of reports accepted in one request; more gets 422."""

    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body accepted, enforced while reading; more gets 413."""

    idempotency_ttl_s: float = Field(default=24 * 3600, gt=0)
    """How long an Idempotency-Key keeps returning the same task; afterwards the key may be reused."""

    long_poll_max_s: float = Field(default=60.0, ge=0)
    """Upper bound on ``GET /task/{id}?wait=``; longer waits are capped to this."""

    pending_hint_s: float = Field(default=2.0, ge=0)
    """Distributed mode: for this long after an API process accepts a job, a long-poll on that process waits for the
    job's finish announcement instead of reading the store first (most jobs finish sooner); a lost announcement
    delays such a long-poll by at most this. 0 turns it off (the long-poll always reads first)."""

    shutdown_drain_s: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long in-flight scoring may take to finish before the process exits anyway."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Minimum level of log lines."""

    log_format: Literal["json", "text"] = "json"
    """``json``: one JSON object per line; ``text``: human-readable lines."""

    log_file: Path | None = None
    """When set (for example ``logs/reportscore.log``), logs also go to this rotating file."""

    opentelemetry: bool = False
    """FastAPI's own OpenTelemetry spans, metrics and logs of each HTTP request, through the global providers (for
    example under ``opentelemetry-instrument``). Off by default: asking the global providers on every request cost
    about 5% of a small request's CPU, and the service's own metrics and access log cover the same ground."""

    metrics_multiproc_dir: Path | None = None
    """Directory where the processes of one ``serve`` or ``worker`` command (its API processes, or a Celery worker
    and its pool processes) share their Prometheus metrics (multiprocess mode). Emptied at start, so give each
    command its own. Unset: a private temporary directory, removed at exit."""

    worker_metrics_port: int = Field(default=9810, ge=0, le=65535)
    """Distributed mode: port of the Prometheus endpoint (``/metrics``) of each ``reportscore worker``, on
    REPORTSCORE_HOST, covering all its pool processes; 0 turns it off. Workers sharing a host need distinct ports."""

    broker_url: SecretStr | None = None
    """Celery broker URL (``redis://…`` or ``amqp://…``): distributed mode. Unset: embedded mode, in-process workers."""

    redis_url: SecretStr | None = None
    """Redis for everything but the broker (long-poll notifications, per-key rate limits shared by every API
    process). Defaults to the broker's URL when it is Redis."""

    queue_name: str = Field(default="reportscore", min_length=1, max_length=200)
    """Celery queue the API publishes to and workers consume (give each test run or tenant its own)."""

    redis_prefix: str = Field(default="reportscore", min_length=1, max_length=200)
    """Prefix of every Redis key and pub/sub channel this deployment uses."""

    worker_concurrency: int = Field(default=2, ge=1)
    """Distributed mode: pool processes per ``reportscore worker``."""

    task_time_limit_s: float = Field(default=300.0, gt=0)
    """Distributed mode: a scoring task running longer than this is killed (and retried up to max_attempts)."""

    visibility_timeout_s: float = Field(default=3600.0, gt=0)
    """Redis broker: an unacknowledged message is redelivered after this long. Must exceed task_time_limit_s."""

    lease_s: float = Field(default=15.0, gt=0)
    """Distributed mode: a claimed (STARTED) job is leased for this long, and the worker scoring it renews the
    lease every ``lease_renew_interval_s`` while it runs; a job whose worker died (no renewal for this long) is
    re-queued by the reconciler. It bounds the recovery time after a crash, independently of how long a job may
    run (``task_time_limit_s``). 15 s tolerates two missed renewals (a store stall, a pause of the worker) before
    a live worker's job is claimed again."""

    lease_renew_interval_s: float = Field(default=5.0, gt=0)
    """Distributed mode: how often a worker process renews the leases of the jobs it is scoring (one UPDATE for
    all of them). At most half of ``lease_s``, so one missed renewal never loses a lease."""

    reconcile_interval_s: float = Field(default=5.0, gt=0)
    """Distributed mode: how often the reconciler (one at a time, by advisory lock) looks for stranded jobs."""

    reconcile_pending_age_s: float = Field(default=30.0, gt=0)
    """Distributed mode: a job PENDING longer than this is published again (its message was lost)."""

    broker_timeout_s: float = Field(default=1.0, gt=0)
    """Connect/publish timeout towards the broker; a submit never waits longer on a broker that is down."""

    redis_tls_cert_reqs: Literal["required", "optional", "none"] = "required"
    """For ``rediss://`` URLs (broker and notifications): whether Redis's TLS certificate must be valid
    (``required``), is checked only if presented (``optional``), or is not checked (``none``: encryption without
    authentication of the server, only for testing)."""

    redis_tls_ca_certs: Path | None = None
    """For ``rediss://`` URLs: CA bundle (PEM) that signs Redis's certificate. Unset: the system's trust store."""

    insecure: bool = False
    """Serve without API keys on a non-loopback address (``serve --insecure``): anyone who can reach the port may
    submit, read every anonymous task and manage models. Logged as a warning at start. Without it, ``serve`` on a
    non-loopback address refuses to start until an API key exists (docs/security.md)."""

    protect_monitoring: bool = False
    """Require an API key with the ``metrics`` or ``admin`` scope for ``/metrics`` and ``/dashboard*`` (give
    Prometheus a ``metrics`` key). Off: they stay open, like ``/heartbeat`` and ``/health/*``."""

    auth_cache_s: float = Field(default=2.0, gt=0, le=60)
    """How long each API process caches an API key lookup and whether any key exists: a revoked key stops working,
    and a first key created turns authentication on, within this many seconds."""

    bootstrap_api_key: SecretStr | None = None
    """An API key (``rsk_…``, from ``reportscore keys generate``) to store if missing, by ``reportscore migrate`` and
    at ``serve`` start: how a deployment provisions its first key from a secret. Revoking it is permanent; rotate by
    setting a new one."""

    bootstrap_api_key_tenant: str = Field(default="default", min_length=1, max_length=128)
    """Tenant of REPORTSCORE_BOOTSTRAP_API_KEY."""

    bootstrap_api_key_scopes: list[Literal["submit", "read", "feedback", "admin", "metrics"]] = Field(
        default=["submit", "read", "feedback"], min_length=1
    )
    """Scopes of REPORTSCORE_BOOTSTRAP_API_KEY (env: a JSON list). Default: what the proof of concept's clients
    need; make admin keys with ``reportscore keys create``."""

    flower_port: int = Field(default=5555, ge=1, le=65535)
    """Port of ``reportscore flower``."""

    worker_task_events: bool = False
    """Distributed mode: Celery workers send task events from the start. Off by default: they are about a third of
    a worker's CPU per job, and Flower turns them on by itself (its periodic ``enable_events`` broadcast; they then
    stay on until the worker restarts). Worker heartbeats are sent either way."""

    flower_basic_auth: SecretStr | None = None
    """``user:password`` for Flower's basic authentication; ``reportscore flower`` refuses to start without it."""

    callbacks_enabled: bool = False
    """Accept a ``callback_url`` on ``POST /predict`` and ``/submit`` and deliver each finished job's result to it
    (signed, from a persisted outbox: docs/callbacks.md). Requires REPORTSCORE_CALLBACK_SECRET: the process refuses to
    start without it. Off: the body of those routes is only the list of reports (the object form with a
    ``callback_url`` is not in the OpenAPI document, and a POST of it gets 422 ``callbacks_disabled``), and callbacks
    not yet delivered wait until it is on again."""

    callback_secret: SecretStr | None = None
    """HMAC-SHA256 key that signs every callback (``X-Reportscore-Signature``), at least 16 characters. Share it
    with the receivers; it is never logged or shown by ``config show``."""

    callback_allow_private_networks: list[str] = Field(default_factory=list)
    """Callback targets allowed although they resolve to private, loopback, link-local or other non-public
    addresses: CIDRs (``10.20.0.0/16``, ``127.0.0.1/32``) or exact host names. Empty: only public addresses.
    Env: a JSON list."""

    callback_max_attempts: int = Field(default=8, ge=1)
    """A callback not acknowledged with a 2xx after this many deliveries is marked ``failed``."""

    callback_backoff_base_s: float = Field(default=2.0, gt=0)
    """Delay before the second delivery; it doubles after each failure (with jitter), up to callback_backoff_max_s."""

    callback_backoff_max_s: float = Field(default=600.0, gt=0)
    """Longest delay between two deliveries of one callback."""

    callback_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of one delivery (connect, send and read the answer)."""

    callback_poll_interval_s: float = Field(default=1.0, gt=0)
    """How often each API process looks for callbacks that are due."""

    callback_concurrency: int = Field(default=16, ge=1)
    """Deliveries one API process makes at the same time."""

    drift_window_s: int = Field(default=3600, ge=3600, multiple_of=3600)
    """Drift: the window PSI is computed over (by ``GET /models/drift``, ``reportscore drift`` and the gauges) unless
    a request names another. A multiple of 3600: counts are kept per hour."""

    drift_psi_warn: float = Field(default=0.1, gt=0)
    """Drift: PSI from which a feature or the score is reported ``warn`` (a moderate shift)."""

    drift_psi_alert: float = Field(default=0.25, gt=0)
    """Drift: PSI from which a feature or the score is reported ``alert`` (a significant shift; alert rules fire)."""

    drift_min_reports: int = Field(default=200, ge=1)
    """Drift: a window with fewer scored reports is reported ``too_few`` and exported to no gauge (PSI on a small
    sample is noise)."""

    maintenance_interval_s: float = Field(default=300.0, gt=0)
    """How often each API process runs the maintenance pass (one process at a time on PostgreSQL): it clears expired
    idempotency keys and removes delivered callbacks older than ``callback_retention_s``."""

    callback_retention_s: float = Field(default=7 * 86400, gt=0)
    """How long a delivered callback's outbox row is kept (for ``GET /task`` and audits) before the maintenance pass
    removes it. Failed deliveries are kept with their job."""

    purge_batch_jobs: int = Field(default=1000, ge=1, le=100_000)
    """``reportscore purge`` and the maintenance pass delete at most this many rows per transaction, so writers
    (scoring) never wait long for them."""

    quality_precision_k: int = Field(default=100, ge=1)
    """The k of precision@k in online quality metrics: how many of the highest-scored reports a moderation team
    reviews (for example in a day). ``GET /models/metrics?k=`` overrides it per request."""

    quality_gauge_window_s: int = Field(default=86400, ge=3600)
    """The span of the Prometheus quality gauges: reports scored in the last this-many seconds (whole hours)."""

    auto_rollback: bool = False
    """Roll a new champion back by itself when its online quality falls below the previous champion's (policy in
    docs/quality.md). Off by default."""

    auto_rollback_metric: Literal["roc_auc", "pr_auc", "precision_at_k"] = "roc_auc"
    """The metric the automatic rollback compares (higher is better)."""

    auto_rollback_on_drift: bool = True
    """With ``auto_rollback`` on, also roll a new champion back when the PSI of its score distribution against its
    reference reaches ``drift_psi_alert`` in an hour with at least ``drift_min_reports`` reports (no labels needed)."""

    auto_rollback_min_labelled: int = Field(default=200, ge=1)
    """Labelled reports each of the two versions needs before the automatic rollback compares them."""

    auto_rollback_margin: float = Field(default=0.05, ge=0)
    """How far below the previous champion's metric the new champion's must be for the automatic rollback."""

    auto_rollback_guard_s: float = Field(default=86400.0, gt=0)
    """The guard period: how long after a promotion the automatic rollback watches the new champion."""

    auto_rollback_baseline_s: float = Field(default=7 * 86400.0, gt=0)
    """The previous champion is judged on the reports it scored in this span before the promotion."""

    auto_rollback_interval_s: float = Field(default=30.0, gt=0)
    """How often the automatic rollback checks (one process at a time, by lock)."""

    @property
    def effective_callback_lease_s(self) -> float:
        """How long a claimed delivery is reserved for the claiming process (then another may send it)."""
        return 2 * self.callback_timeout_s + 10.0

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'reportscore.db').resolve()}"

    @property
    def effective_redis_url(self) -> str | None:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.broker_url is not None and self.broker_url.get_secret_value().startswith(("redis://", "rediss://")):
            return self.broker_url.get_secret_value()
        return None

    def redis_tls_options(self, url: str) -> dict[str, Any]:
        """redis-py keyword arguments for TLS when ``url`` is ``rediss://`` (empty otherwise)."""
        if not url.startswith("rediss://"):
            return {}
        options: dict[str, Any] = {"ssl_cert_reqs": self.redis_tls_cert_reqs}
        if self.redis_tls_ca_certs is not None:
            options["ssl_ca_certs"] = str(self.redis_tls_ca_certs)
        return options

    @property
    def effective_model_store_url(self) -> str:
        return self.model_store_url or (self.data_dir / "models").resolve().as_uri()

    @property
    def effective_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "model-cache"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def mode(self) -> Literal["embedded", "distributed"]:
        return "embedded" if self.broker_url is None else "distributed"

    @field_validator("model_store_url")
    @classmethod
    def _check_store_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("file://", "s3://")):
            raise ValueError(
                f"{url!r}: REPORTSCORE_MODEL_STORE_URL takes file:///path (a local directory or a shared volume) "
                "or s3://bucket/prefix"
            )
        return url

    @field_validator("model_store_endpoint_url")
    @classmethod
    def _check_endpoint_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r}: REPORTSCORE_MODEL_STORE_ENDPOINT_URL needs its scheme (http://host:port)")
        return url

    @model_validator(mode="after")
    def _check_combination(self) -> Settings:
        check_combination(self)
        return self

    def redacted(self) -> dict[str, Any]:
        """Effective settings with secrets and URL passwords hidden (for ``config show``)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "callback_secret" and value is not None:
                value = "***"
            elif isinstance(value, SecretStr):
                value = redact_url(value.get_secret_value())
            elif name.endswith("_url") and value:
                value = redact_url(value)
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["effective_database_url"] = redact_url(self.effective_database_url)
        out["mode"] = self.mode
        return out
