"""The annotation questions of a project, stored in Project.settings and validated here.

A project's settings JSON holds only what its managers changed; everything else comes from the
defaults below. PATCH requests merge into the stored JSON (RFC 7396 JSON merge patch: objects
merge key by key, null removes a key) before the result is validated.
"""

import re
from functools import lru_cache
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from app.errors import InvalidInput
from app.web.labels import N_

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Maximum lease a project may set: a week, so a forgotten tab cannot keep an item for good.
MAX_LEASE_S = 7 * 24 * 3600
MIN_LEASE_S = 10
MAX_CRITERIA = 12
MAX_FLAGS = 12
MAX_SCALE_POINTS = 9

# Display names of the built-in rubric criteria and flags, translated when a label is not set.
DEFAULT_CRITERION_LABELS = {
    "helpfulness": N_("Helpfulness"), "correctness": N_("Correctness"), "harmlessness": N_("Harmlessness"),
}
DEFAULT_FLAG_LABELS = {
    "personal_data": N_("Contains personal data"), "harmful": N_("Harmful"),
    "unanswerable": N_("Unanswerable"), "low_quality": N_("Low quality"),
}
# Keys that a shortcut may use besides single printable characters.
NAMED_KEYS = frozenset({"Enter", "Escape", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Space"})
SHORTCUT_LABELS = {
    "submit": N_("Submit and next"), "skip": N_("Skip"), "flag": N_("Flag mode"), "help": N_("Help"),
    "edit": N_("Edit the response"), "next_question": N_("Next question"),
    "previous_question": N_("Previous question"), "choose_a": N_("Prefer A"), "choose_b": N_("Prefer B"),
}
SHORTCUT_ACTIONS = tuple(SHORTCUT_LABELS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_key(value: str) -> str:
    if not KEY_PATTERN.match(value):
        raise ValueError(
            f"invalid key {value!r}: use 1 to 40 lowercase letters, digits or '_', starting with a letter"
        )
    return value


class Criterion(_Strict):
    key: str
    label: str | None = Field(None, max_length=100, description="shown name; default: the built-in name")
    description: str = Field("", max_length=1000)

    _key = field_validator("key")(_check_key)


class Flag(_Strict):
    key: str
    label: str | None = Field(None, max_length=100, description="shown name; default: the built-in name")

    _key = field_validator("key")(_check_key)


class ResponseQuestion(_Strict):
    """Write the final assistant turn, or edit a pre-filled candidate."""

    enabled: bool = True
    required: bool = True
    prefill: bool = Field(True, description="start from the item's best candidate when it has one")


class RubricQuestion(_Strict):
    enabled: bool = True
    required: bool = True
    scale_min: int = Field(1, ge=0, le=9)
    scale_max: int = Field(5, ge=1, le=9)
    criteria: list[Criterion] = Field(
        default_factory=lambda: [Criterion(key=key) for key in DEFAULT_CRITERION_LABELS],
        max_length=MAX_CRITERIA,
    )

    @model_validator(mode="after")
    def _check_scale(self) -> "RubricQuestion":
        points = self.scale_max - self.scale_min + 1
        if not 2 <= points <= MAX_SCALE_POINTS:
            raise ValueError(
                f"invalid scale {self.scale_min} to {self.scale_max}: use 2 to {MAX_SCALE_POINTS} points "
                "between 0 and 9, so that each point has its own number key"
            )
        keys = [criterion.key for criterion in self.criteria]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate rubric criterion keys in {keys}")
        if self.enabled and not self.criteria:
            raise ValueError("the rubric is enabled but has no criteria: add one or disable the rubric")
        return self


class RankingQuestion(_Strict):
    """Rank all candidates of an item, 1 best; equal ranks are ties. Asked when it has two or more."""

    enabled: bool = True
    required: bool = False


class PairwiseQuestion(_Strict):
    """Pick the better of two candidates shown side by side. Asked when an item has two or more."""

    enabled: bool = False
    required: bool = True


class NoteQuestion(_Strict):
    enabled: bool = True


class Shortcuts(_Strict):
    """Keys of the annotation workspace. Digits are kept for ratings and ranks."""

    submit: str = "Enter"
    skip: str = "s"
    flag: str = "f"
    help: str = "?"
    edit: str = "e"
    next_question: str = "j"
    previous_question: str = "k"
    choose_a: str = "a"
    choose_b: str = "b"

    @model_validator(mode="after")
    def _check_keys(self) -> "Shortcuts":
        seen: dict[str, str] = {}
        for action in SHORTCUT_ACTIONS:
            key = getattr(self, action)
            if key not in NAMED_KEYS and (len(key) != 1 or not key.isprintable() or key.isspace()):
                raise ValueError(
                    f"invalid key {key!r} for {action}: use one printable character or one of "
                    f"{', '.join(sorted(NAMED_KEYS))}"
                )
            if key.isdigit():
                raise ValueError(f"invalid key {key!r} for {action}: digits set ratings and ranks")
            normalized = key.lower() if len(key) == 1 else key
            if normalized in seen:
                raise ValueError(f"key {key!r} is used for both {seen[normalized]} and {action}")
            seen[normalized] = action
        return self


class AnnotationSettings(_Strict):
    """Everything in Project.settings: the questions, flags, lease length and keyboard shortcuts."""

    response: ResponseQuestion = Field(default_factory=ResponseQuestion)
    rubric: RubricQuestion = Field(default_factory=RubricQuestion)
    ranking: RankingQuestion = Field(default_factory=RankingQuestion)
    pairwise: PairwiseQuestion = Field(default_factory=PairwiseQuestion)
    note: NoteQuestion = Field(default_factory=NoteQuestion)
    flags: list[Flag] = Field(
        default_factory=lambda: [Flag(key=key) for key in DEFAULT_FLAG_LABELS], max_length=MAX_FLAGS,
    )
    lease_s: Annotated[int, Field(ge=MIN_LEASE_S, le=MAX_LEASE_S)] | None = Field(
        None, description="seconds an item stays leased to one annotator; default: SFTDESK_LEASE_S"
    )
    shortcuts: Shortcuts = Field(default_factory=Shortcuts)

    @field_validator("flags")
    @classmethod
    def _unique_flags(cls, flags: list[Flag]) -> list[Flag]:
        keys = [flag.key for flag in flags]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate flag keys in {keys}")
        return flags

    def criterion_keys(self) -> list[str]:
        return [criterion.key for criterion in self.rubric.criteria] if self.rubric.enabled else []

    def flag_keys(self) -> list[str]:
        return [flag.key for flag in self.flags]

    def scale(self) -> range:
        return range(self.rubric.scale_min, self.rubric.scale_max + 1)


def _describe(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    return "invalid annotation settings: " + "; ".join(problems)


def parse_settings(raw: dict[str, Any] | None) -> AnnotationSettings:
    """Validate a settings dict; raise InvalidInput naming every invalid field."""
    try:
        return AnnotationSettings.model_validate(raw or {})
    except ValidationError as error:
        raise InvalidInput(_describe(error)) from error


def load_settings(project) -> AnnotationSettings:
    """Return a project's settings with defaults filled in; the instance is shared, so never change it.

    Stored settings were validated on write; should an older row fail today's rules, the defaults
    are used rather than locking annotators out.
    """
    return _settings_from_json(orjson.dumps(project.settings or {}, option=orjson.OPT_SORT_KEYS))


@lru_cache(maxsize=256)
def _settings_from_json(raw: bytes) -> AnnotationSettings:
    try:
        return AnnotationSettings.model_validate_json(raw)
    except ValidationError:
        return AnnotationSettings()


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7396 JSON merge patch and return the result; the inputs are not changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def settings_to_store(settings: AnnotationSettings) -> dict[str, Any]:
    """Return the JSON to store: the fields that were set, so later default changes still apply."""
    return settings.model_dump(mode="json", exclude_unset=True)


def criterion_label(criterion: Criterion, translate_message) -> str:
    if criterion.label:
        return criterion.label
    default = DEFAULT_CRITERION_LABELS.get(criterion.key)
    return translate_message(default) if default else criterion.key


def flag_label(flag: Flag, translate_message) -> str:
    if flag.label:
        return flag.label
    default = DEFAULT_FLAG_LABELS.get(flag.key)
    return translate_message(default) if default else flag.key
