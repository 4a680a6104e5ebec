"""The Runner seam: the API commits a job, then hands its id to a runner."""

from __future__ import annotations

from typing import Protocol

from reportscore.storage.repositories.jobs import FeatureRows


class Runner(Protocol):
    """Takes committed job ids and gets them scored, eventually, exactly once."""

    uses_features: bool
    """Whether ``submit`` makes use of ``features``: the API builds that hand-over only for a runner that does."""

    async def start(self) -> None:
        """Start workers and re-submit every job left unfinished by an earlier process."""

    def has_capacity(self) -> bool:
        """False when accepting another job would exceed the pending-jobs bound (the API answers 503)."""
        ...

    def reserve(self) -> None:
        """Take one slot of the pending-jobs bound before the job is committed."""

    def release(self) -> None:
        """Give back a slot taken by ``reserve`` when the job was not committed after all."""

    def submit(
        self, job_id: str, n_reports: int, *, owner: str | None = None, features: FeatureRows | None = None
    ) -> None:
        """Hand over a committed job (after ``reserve``). ``owner`` and ``features`` (its reports as committed) are
        hints a runner in this process may use instead of reading the store; the job is the same without them."""

    def pending(self) -> int:
        """Jobs accepted and not yet finished."""
        ...

    def broker_status(self) -> str:
        """The broker's state for /health/ready ("ok", "down: …", or that none is used); may block briefly."""
        ...

    async def stop(self, *, drain_s: float) -> None:
        """Stop taking work, let in-flight scoring finish (up to ``drain_s``); queued jobs stay for recovery."""
