"""Translated display names for stored enum values (statuses, roles, sources)."""

from app.i18n.catalog import translate


def N_(message: str) -> str:
    """Mark a string for the translation catalog without translating it here."""
    return message


STATUS_LABELS = {
    "new": N_("New"), "annotated": N_("Annotated"), "accepted": N_("Accepted"), "rejected": N_("Rejected"),
}
ROLE_LABELS = {
    "system": N_("System"), "user": N_("User"), "assistant": N_("Assistant"),
    "function_call": N_("Tool call"), "observation": N_("Tool result"),
}
SOURCE_LABELS = {"import": N_("Imported"), "human": N_("Written by a person"), "model": N_("Drafted by a model")}
CANDIDATE_LABELS = {"reference": N_("Reference"), "chosen": N_("Chosen"), "rejected": N_("Rejected")}


def translated(labels: dict[str, str], locale: str) -> dict[str, str]:
    return {key: translate(locale, value) for key, value in labels.items()}


def label_context(locale: str) -> dict[str, dict[str, str]]:
    return {
        "status_labels": translated(STATUS_LABELS, locale),
        "role_labels": translated(ROLE_LABELS, locale),
        "source_labels": translated(SOURCE_LABELS, locale),
        "label_labels": translated(CANDIDATE_LABELS, locale),
    }
