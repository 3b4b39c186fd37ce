"""The job context that a handler receives: parameters, progress and log reporting, and the stop signal.

A `LeaseKeeper` thread runs beside each job. Every tick it renews the lease when a third of it has
passed or new progress is waiting, stores progress and log, and reads the job's cancel flag, so a
cancellation reaches `should_stop()` within about one tick.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.jobs import queue
from app.jobs.queue import ClaimedJob
from app.logging import get_logger

log = get_logger(__name__)

# Reasons for a job to stop early.
STOP_CANCELLED = "cancelled"
STOP_LEASE_LOST = "lease_lost"
STOP_SHUTDOWN = "shutdown"
# While the database is unreachable, a failed lease renewal is logged once and then every this many ticks.
FAILURE_LOG_EVERY = 30


class JobError(Exception):
    """A failure that a retry cannot fix, such as a missing snapshot or an unknown run. The job fails at once."""


class JobInterrupted(Exception):
    """Raised inside a handler to end the job early because `should_stop()` returned True."""


@dataclass
class JobOutcome:
    """A handler's return value: the job's result and a function that stores what the job produced.

    `write` runs in the transaction that marks the job succeeded, after the worker has checked that
    it still holds the lease. It may return a dict that is merged into `result`.
    """

    result: dict[str, Any] = field(default_factory=dict)
    write: Callable[[Session], dict[str, Any] | None] | None = None


class LeaseKeeper(threading.Thread):
    """Background thread that renews one job's lease and stores its progress and log."""

    def __init__(
        self, claimed: ClaimedJob, *, lease_s: float, tick_s: float, shutdown: threading.Event,
    ) -> None:
        super().__init__(name=f"lease-keeper-{claimed.lease.job_id}", daemon=True)
        self.lease = claimed.lease
        self.lease_s = lease_s
        self.tick_s = tick_s
        self.renew_every_s = lease_s / 3
        self.shutdown = shutdown
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._progress: dict[str, Any] = {}
        self._log_text = claimed.log
        self._dirty = False
        self._last_renewal = time.monotonic()
        self.stop_reason: str | None = None

    def set_progress(self, progress: dict[str, Any]) -> None:
        with self._lock:
            self._progress = progress
            self._dirty = True

    def append_log(self, message: str) -> None:
        with self._lock:
            self._log_text = queue.append_log(self._log_text, message)
            self._dirty = True

    def current(self) -> tuple[dict[str, Any], str]:
        """Return the latest progress and the whole log."""
        with self._lock:
            return dict(self._progress), self._log_text

    def mark_lease_lost(self) -> None:
        """Record that a write found the lease gone, so the worker discards the attempt."""
        self.stop_reason = STOP_LEASE_LOST

    def stop_requested(self) -> str | None:
        if self.stop_reason is not None:
            return self.stop_reason
        if self.shutdown.is_set():
            return STOP_SHUTDOWN
        return None

    def run(self) -> None:
        failures = 0
        while not self._closed.wait(self.tick_s):
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - the next tick retries within the lease
                failures += 1
                if failures == 1 or failures % FAILURE_LOG_EVERY == 0:
                    log.warning("lease renewal failed", job_id=self.lease.job_id, error=str(error), failures=failures)
                continue
            if failures:
                log.info("lease renewal recovered", job_id=self.lease.job_id, failures=failures)
                failures = 0

    def tick(self) -> None:
        with self._lock:
            dirty = self._dirty
            progress, log_text = dict(self._progress), self._log_text
            self._dirty = False
        due = time.monotonic() - self._last_renewal >= self.renew_every_s
        if dirty or due:
            try:
                state = queue.renew_lease(
                    self.lease, lease_s=self.lease_s, progress=progress if dirty else None,
                    log_text=log_text if dirty else None,
                )
            except BaseException:
                with self._lock:
                    self._dirty = self._dirty or dirty
                raise
            self._last_renewal = time.monotonic()
        else:
            state = queue.read_lease_state(self.lease)
        if not state.held:
            if self.stop_reason != STOP_LEASE_LOST:
                log.warning("job lease lost", job_id=self.lease.job_id, attempt=self.lease.attempt)
            self.stop_reason = STOP_LEASE_LOST
        elif state.cancel_requested and self.stop_reason is None:
            log.info("job cancel requested", job_id=self.lease.job_id)
            self.stop_reason = STOP_CANCELLED

    def close(self) -> None:
        self._closed.set()
        if self.is_alive():
            self.join()


class JobContext:
    """A claimed job's parameters and its channel to the lease keeper, passed to the handler."""

    def __init__(self, claimed: ClaimedJob, settings: Settings, keeper: LeaseKeeper) -> None:
        self.job_id = claimed.lease.job_id
        self.kind = claimed.kind
        self.project_id = claimed.project_id
        self.snapshot_id = claimed.snapshot_id
        self.params = claimed.params
        self.attempt = claimed.lease.attempt
        self.max_attempts = claimed.max_attempts
        self.created_at = claimed.created_at
        self.lease = claimed.lease
        self.settings = settings
        self._keeper = keeper
        self._phase: str | None = None
        self._phase_started = time.monotonic()

    def should_stop(self) -> bool:
        """Return True once the job was cancelled, lost its lease, or the worker is shutting down."""
        return self._keeper.stop_requested() is not None

    def lease_lost(self) -> JobInterrupted:
        """Record that the lease is gone and return the exception that ends the handler."""
        self._keeper.mark_lease_lost()
        return JobInterrupted(STOP_LEASE_LOST)

    def raise_if_stopped(self) -> None:
        if self.should_stop():
            raise JobInterrupted(self._keeper.stop_requested())

    def log(self, message: str) -> None:
        """Append a line to the job log that the UI shows. Never pass prompt or response text."""
        self._keeper.append_log(message)

    def report(
        self, phase: str, step: int, total_steps: int, *, loss: float | None = None,
        eta_seconds: float | None = None, **extra: Any,
    ) -> None:
        """Store progress. Without `eta_seconds`, the time left is estimated from the pace of this phase."""
        now = time.monotonic()
        if phase != self._phase:
            self._phase = phase
            self._phase_started = now
        if eta_seconds is None and step > 0 and total_steps >= step:
            eta_seconds = (now - self._phase_started) / step * (total_steps - step)
        self._keeper.set_progress({
            "phase": phase, "step": step, "total_steps": total_steps, "loss": loss,
            "eta_seconds": eta_seconds, **extra,
        })
