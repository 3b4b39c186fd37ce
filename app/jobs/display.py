"""Translated names of job kinds, statuses and progress phases, and time formatting for the pages."""

from typing import Any

from app.web.labels import N_, translated

KIND_LABELS = {"finetune": N_("Fine-tune"), "evaluate": N_("Evaluate"), "suggest": N_("Suggest")}
STATUS_LABELS = {
    "queued": N_("Queued"), "running": N_("Running"), "succeeded": N_("Succeeded"), "failed": N_("Failed"),
    "cancelled": N_("Cancelled"),
}
PHASE_LABELS = {
    "starting": N_("Starting"), "preparing": N_("Loading the model"), "training": N_("Training"),
    "loss": N_("Validation loss"), "generation": N_("Generating answers"), "drafting": N_("Drafting responses"),
}
MODEL_LABELS = {"finetuned": N_("fine-tuned model"), "base": N_("base model")}
METRIC_LABELS = {
    "validation_loss": N_("Validation loss"), "perplexity": N_("Perplexity"), "rouge_l": N_("ROUGE-L"),
    "bleu": N_("BLEU"), "chrf": N_("chrF"),
}
ACTIVE_STATUSES = ("queued", "running")


def format_duration(seconds: Any) -> str:
    """Format seconds as H:MM:SS, or an empty string when unknown."""
    if not isinstance(seconds, int | float) or seconds < 0:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, remaining_seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{remaining_seconds:02d}"


def job_label_context(locale: str) -> dict[str, Any]:
    return {
        "kind_labels": translated(KIND_LABELS, locale),
        "job_status_labels": translated(STATUS_LABELS, locale),
        "phase_labels": translated(PHASE_LABELS, locale),
        "model_labels": translated(MODEL_LABELS, locale),
        "metric_labels": translated(METRIC_LABELS, locale),
        "format_duration": format_duration,
        "active_statuses": ACTIVE_STATUSES,
    }
