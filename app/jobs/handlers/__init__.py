"""Job handlers, one module per job kind. Each module imports the ML stack only when a job runs."""

from collections.abc import Callable
from importlib import import_module

from app.jobs.context import JobContext, JobOutcome

HANDLER_MODULES = {
    "finetune": "app.jobs.handlers.finetune",
    "evaluate": "app.jobs.handlers.evaluate",
    "suggest": "app.jobs.handlers.suggest",
}


def handler_for(kind: str) -> Callable[[JobContext], JobOutcome]:
    """Return the `run` function of a job kind's handler module."""
    if kind not in HANDLER_MODULES:
        raise KeyError(f"no handler for job kind {kind!r}; known kinds: {', '.join(HANDLER_MODULES)}")
    return import_module(HANDLER_MODULES[kind]).run
