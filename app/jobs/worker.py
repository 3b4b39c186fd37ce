"""The job worker: claim a job, run its handler under a renewed lease, record how it ended.

Run it with `sftdesk worker` (or `python -m app.cli worker`). Any number of workers may share one
database. SIGTERM or SIGINT requests a graceful stop: a running fine-tune saves a checkpoint and its
job goes back to the queue for the next worker. A second signal ends the process at once.
"""

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from app.config import Settings, get_settings
from app.errors import DomainError
from app.jobs import queue
from app.jobs.context import (
    STOP_CANCELLED,
    STOP_LEASE_LOST,
    STOP_SHUTDOWN,
    JobContext,
    JobError,
    JobInterrupted,
    JobOutcome,
    LeaseKeeper,
)
from app.jobs.queue import ClaimedJob
from app.logging import get_logger

log = get_logger(__name__)

Handler = Callable[[JobContext], JobOutcome]

# Pause after an unexpected error in the loop itself (such as a lost database connection).
LOOP_ERROR_PAUSE_S = 5.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"[:200]


def _is_permanent(error: BaseException) -> bool:
    """Return whether a retry cannot help: bad parameters, data or models, as the training library reports them."""
    from app.training.errors import GenerationError, TrainingError

    # A GenerationError is retried, because a suggestion endpoint that timed out may respond later.
    if isinstance(error, GenerationError):
        return False
    return isinstance(error, (JobError, DomainError, TrainingError))


class Worker:
    """Claims and runs jobs one at a time until a shutdown is requested."""

    def __init__(
        self, *, settings: Settings | None = None, worker_id: str | None = None,
        handlers: dict[str, Handler] | None = None, kinds: Iterable[str] | None = None,
        tick_s: float = 1.0, retry_base_s: float = queue.DEFAULT_RETRY_BASE_S,
    ) -> None:
        self.settings = settings or get_settings()
        self.worker_id = worker_id or default_worker_id()
        self.handlers = handlers
        self.kinds = tuple(kinds) if kinds else None
        self.tick_s = tick_s
        self.retry_base_s = retry_base_s
        self.shutdown = threading.Event()

    def request_shutdown(self) -> None:
        self.shutdown.set()

    def run(self, *, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
        """Run jobs until shutdown, `max_jobs` jobs, or (with exit_when_idle) an empty queue.

        Returns the number of jobs run.
        """
        log.info("worker started", worker_id=self.worker_id, kinds=self.kinds)
        done = 0
        while not self.shutdown.is_set() and (max_jobs is None or done < max_jobs):
            try:
                ran = self.run_once()
            except Exception as error:
                log.exception("worker poll failed", worker_id=self.worker_id, error=str(error))
                self.shutdown.wait(LOOP_ERROR_PAUSE_S)
                continue
            if ran:
                done += 1
            elif exit_when_idle:
                break
            else:
                self.shutdown.wait(self.settings.worker_poll_s)
        log.info("worker stopped", worker_id=self.worker_id, jobs_run=done)
        return done

    def run_once(self) -> bool:
        """Claim one ready job and run it. Returns False when there was none."""
        if not queue.has_claimable_job(kinds=self.kinds):
            return False
        claimed = queue.claim_next(
            self.worker_id, lease_s=self.settings.job_lease_s, kinds=self.kinds, retry_base_s=self.retry_base_s,
        )
        if claimed is None:
            return False
        self.execute(claimed)
        return True

    def execute(self, claimed: ClaimedJob) -> str | None:
        """Run a claimed job and record its end. Returns the job's new status, or None if the lease was lost."""
        lease = claimed.lease
        bound = log.bind(job_id=lease.job_id, kind=claimed.kind, attempt=lease.attempt, worker_id=self.worker_id)
        keeper = LeaseKeeper(claimed, lease_s=self.settings.job_lease_s, tick_s=self.tick_s, shutdown=self.shutdown)
        context = JobContext(claimed, self.settings, keeper)
        context.log(f"attempt {lease.attempt} of {claimed.max_attempts} started on worker {self.worker_id}")
        context.report("starting", 0, 0)
        keeper.start()
        bound.info("job started")

        outcome: JobOutcome | None = None
        failure: BaseException | None = None
        try:
            outcome = self._handler(claimed.kind)(context)
        except JobInterrupted:
            pass
        except Exception as error:  # noqa: BLE001 - recorded on the job below
            failure = error
        finally:
            keeper.close()

        progress, log_text = keeper.current()
        stop_reason = keeper.stop_requested()
        if stop_reason == STOP_LEASE_LOST:
            bound.warning("job result discarded because the lease was lost")
            return None
        if failure is not None:
            return self._record_failure(claimed, failure, log_text, progress, bound)
        if outcome is None:
            return self._record_stop(claimed, stop_reason, log_text, progress, bound)

        log_text = queue.append_log(log_text, "finished")
        try:
            stored = queue.finish(
                lease, "succeeded", log_text=log_text, progress=progress, result=outcome.result,
                write=outcome.write,
            )
        except Exception as error:  # noqa: BLE001 - a failed final write is an attempt failure
            return self._record_failure(claimed, error, log_text, progress, bound)
        if not stored:
            bound.warning("job result discarded because the lease was lost")
            return None
        bound.info("job succeeded")
        return "succeeded"

    def _handler(self, kind: str) -> Handler:
        if self.handlers is not None:
            return self.handlers[kind]
        from app.jobs.handlers import handler_for

        return handler_for(kind)

    def _record_stop(
        self, claimed: ClaimedJob, reason: str | None, log_text: str, progress: dict[str, Any], bound,
    ) -> str | None:
        lease = claimed.lease
        if reason == STOP_SHUTDOWN:
            log_text = queue.append_log(log_text, "worker shutting down, job returned to the queue")
            released = queue.release(lease, log_text=log_text)
            bound.info("job released on shutdown")
            return "queued" if released else None
        if reason != STOP_CANCELLED:
            # A handler raised JobInterrupted without a stop request: treat it as a failed attempt.
            return self._record_failure(claimed, JobError("the job stopped without a reason"), log_text, progress, bound)
        log_text = queue.append_log(log_text, "cancelled")
        stored = queue.finish(lease, "cancelled", log_text=log_text, progress=progress)
        bound.info("job cancelled")
        return "cancelled" if stored else None

    def _record_failure(
        self, claimed: ClaimedJob, error: BaseException, log_text: str, progress: dict[str, Any], bound,
    ) -> str | None:
        lease = claimed.lease
        message = _describe(error)
        log_text = queue.append_log(log_text, f"failed: {message}")
        if _is_permanent(error):
            bound.warning("job failed", error=message, retry=False)
            stored = queue.finish(lease, "failed", log_text=log_text, progress=progress, error=message)
            return "failed" if stored else None
        bound.error("job attempt failed", error=message, exc_info=error)
        return queue.retry_later(lease, error=message, log_text=log_text, retry_base_s=self.retry_base_s)


def _describe(error: BaseException) -> str:
    """Return the message stored on the job: sftdesk's own errors are written for people, others get their type."""
    if isinstance(error, DomainError):
        return error.message
    text = str(error) or error.__class__.__name__
    if error.__class__.__module__.startswith("app."):
        return text
    return f"{error.__class__.__name__}: {text}"


def run_worker(
    *, max_jobs: int | None = None, exit_when_idle: bool = False, kinds: Iterable[str] | None = None,
    retry_base_s: float = queue.DEFAULT_RETRY_BASE_S,
) -> int:
    """Run a worker in this process with SIGTERM and SIGINT handlers. Returns the number of jobs run."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    worker = Worker(kinds=kinds, retry_base_s=retry_base_s)

    def stop(signum, _frame) -> None:
        log.info("worker shutdown requested", worker_id=worker.worker_id, signal=signal.Signals(signum).name)
        worker.request_shutdown()
        # A second signal ends the process without waiting for the job.
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return worker.run(max_jobs=max_jobs, exit_when_idle=exit_when_idle)
