"""Translated display names of annotation statuses and review decisions."""

from app.web.labels import N_, translated

ANNOTATION_STATUS_LABELS = {
    "draft": N_("Draft"), "submitted": N_("Submitted"), "accepted": N_("Accepted"),
    "rejected": N_("Rejected"), "returned": N_("Returned"),
}


def annotation_label_context(locale: str) -> dict[str, dict[str, str]]:
    return {"annotation_status_labels": translated(ANNOTATION_STATUS_LABELS, locale)}
