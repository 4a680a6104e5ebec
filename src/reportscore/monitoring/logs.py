"""Structured logging: one JSON object per line (or readable text), to stderr and optionally a rotating file.

Records are handed to a background thread (``QueueHandler`` → ``QueueListener``), so the thread that logs — often
the event loop, once per request — never waits for a write to a pipe or a disk. ``flush_logs`` drains the queue
(called at shutdown, and before a process replaces itself); a forked child starts its own writer thread.
"""

from __future__ import annotations

import atexit
import copy
import logging
import logging.handlers
import os
import queue
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        )
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f" [{extras}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


class _DeferredHandler(logging.handlers.QueueHandler):
    """Queues a copy of the record with its message and traceback already rendered (arguments may not survive)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not record.args and not record.exc_info:
            return record  # nothing to render: the record travels as is (a copy per access-log line was measurable)
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


_deferred: _DeferredHandler | None = None
_listener: logging.handlers.QueueListener | None = None
_targets: list[logging.Handler] = []
_hooks_installed = False


class _BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose lines are written when the writer thread has drained the queue (``flush``): one
    write for a burst of records instead of one each."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            try:
                self.stream.write("".join(lines))
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "log write failed"}))
        super().flush()


class _DrainingListener(logging.handlers.QueueListener):
    """Flushes its handlers each time the queue runs empty, before waiting for more, and when it stops."""

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord], *handlers: logging.Handler) -> None:
        super().__init__(records, *handlers, respect_handler_level=True)
        self._records = records

    def dequeue(self, block: bool) -> logging.LogRecord:
        try:
            return self._records.get_nowait()
        except queue.Empty:
            self._flush()
            return self._records.get(block)

    def stop(self) -> None:
        super().stop()
        self._flush()

    def _flush(self) -> None:
        for handler in self.handlers:
            handler.flush()


def _start_listener() -> None:
    global _listener
    assert _deferred is not None
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _deferred.queue = records
    _listener = _DrainingListener(records, *_targets)
    _listener.start()


def flush_logs() -> None:
    """Write every queued record now (the writer thread keeps running afterwards)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
        _start_listener()


def _stop_at_exit() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def configure_logging(*, level: str, fmt: str, log_file: Path | None) -> None:
    """Route reportscore's and uvicorn's logs through one formatter; idempotent."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    handlers: list[logging.Handler] = [_BufferedStreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(log_file, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8")
        )
    global _deferred, _hooks_installed
    root = logging.getLogger()
    _stop_at_exit()
    for old in list(root.handlers):
        if getattr(old, "_reportscore", False):
            root.removeHandler(old)
            old.close()
    for handler in _targets:
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
    _targets[:] = handlers
    _deferred = _DeferredHandler(queue.SimpleQueue())
    _deferred._reportscore = True  # type: ignore[attr-defined]
    root.addHandler(_deferred)
    _start_listener()
    if not _hooks_installed:
        atexit.register(_stop_at_exit)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _hooks_installed = True
    root.setLevel(level)
    # No formatter here prints the caller's file/line, thread or process, which logging otherwise collects for every
    # record (a stack walk per access-log line): the switches the logging HOWTO gives for this ("Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `reportscore migrate` prints its own summary


def _after_fork_in_child() -> None:
    """The parent's writer thread does not exist in a forked child: give the child its own queue and writer."""
    global _listener
    if _deferred is not None:
        _listener = None
        _start_listener()
