"""Errors that the training library raises for the worker to record on a job."""


class TrainingError(Exception):
    """Base class of the errors in `app.training`; the message is meant for the person running the job."""


class ConfigError(TrainingError):
    """Invalid job parameters. `errors` lists one `{"field", "message"}` entry per problem."""

    def __init__(self, config_name: str, errors: list[dict[str, str]]) -> None:
        self.config_name = config_name
        self.errors = errors
        lines = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        super().__init__(f"invalid {config_name}: {lines}")


class TrainingDataError(TrainingError):
    """The snapshot is missing a file or has no example that can be trained or evaluated."""


class ChatTemplateError(TrainingError):
    """The tokenizer has no chat template, or one that cannot mark assistant tokens for the loss."""


class GenerationError(TrainingError):
    """A generation request to a local model or an OpenAI-compatible server failed."""
