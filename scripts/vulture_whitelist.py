"""Names vulture cannot see used (run by ``scripts/test.sh`` and ``make lint`` with the ``[tool.vulture]`` config).

Each entry says who uses the name. Framework callbacks found by decorator or name are configured in pyproject.
"""

# ruff: noqa: B018  (bare attribute expressions are how vulture whitelists are written)

_ = object()

# Pydantic response schemas: every field is part of the documented JSON (the OpenAPI document, the contract tests).
_.up
_.p50
_.p95
_.p99
_.requests_per_s
_.jobs_per_s
_.reports_per_s
_.job_latency_ms
_.http_latency_ms
_.http_4xx_per_s
_.http_5xx_per_s
_.job_failures_per_s
_.share
_.bucket_upper
_.by_abuse_type
_.generated_at
_.totals
_.queued_ms
_.total_ms
_.feature
_.contribution
_.timings
_.input

# SQLAlchemy: ORM columns written and read through the mapper, a TypeDecorator's hooks, the DBAPI's isolation level.
_.promoted_at
_.promoted_by
_.computed_at
_.impl
_.cache_ok
_.process_bind_param
_.process_result_value
_.isolation_level

# logging: the QueueHandler/QueueListener hooks the log pipeline overrides, and LogRecord/Logger switches it sets.
_.prepare
_.dequeue
_._srcfile
_.logThreads
_.logProcesses
_.logMultiprocessing
_.disabled

# ONNX Runtime session options, set by attribute.
_.intra_op_num_threads
_.inter_op_num_threads
_.execution_mode
_.log_severity_level

# XGBoost's training callback interface.
_.after_iteration
_.evals_log

# Read by the tests, the benchmarks and the docs checks (counters and helpers they rely on).
_.scopes_markdown  # the route/scope table of docs/security.md, kept in sync by a test
_.answered  # requests the fast path answered itself
_.groups  # group commits made
_.hint_count  # pending hints held
_.submit_job  # one submission in its own transaction (tests, benchmarks)
_.encode_reports  # feature encoding of report dicts (tests, benchmarks)
_.sample_reports  # synthetic reports (benchmarks, tests)
_.max_difference  # compiled trees' largest deviation from the booster (tests)
_.feedback_history  # a report's moderation feedback (moderation scenarios)

# Declared metadata: which side records a metric (the process or the store's collector), kept with its declaration.
_.recorded_by

# Response and ORM fields that pydantic serializes or operators read in the database.
_.versions
_.updated_at

# The dashboard's shadow panel fields (serialized by pydantic), and the shadow scorer's synchronous drain (tests).
_.top_10_overlap
_.roc_auc_champion
_.roc_auc_challenger
_.run_pending

# The maintenance pass's result (tests read both counts).
_.idempotency_keys
_.invalidate  # the drift collector's cache, dropped by tests before a scrape

# Online quality: response fields (serialized by pydantic) and a judgement's numbers (stored as its details).
_.mean_score
_.positive_rate
_.le_s
_.p50_le_s
_.p90_le_s
_.min_labelled
