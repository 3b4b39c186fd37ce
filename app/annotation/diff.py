"""Differences between an original candidate and the annotator's edit, as escaped HTML.

Text is compared line by line first, then changed lines token by token. A token is a run of
letters or digits, a single CJK character, a run of spaces, or one other character, so that an
edit inside a Chinese sentence marks the characters that changed instead of the whole line.
"""

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from markupsafe import Markup, escape

# CJK ideographs, kana, hangul and full-width forms become one token per character.
_CJK = (
    "\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002ffff"
)
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\S\n]+|\n|.", re.DOTALL)
# Above this many tokens in one changed block the token pass is skipped and whole lines are
# marked, because SequenceMatcher's time grows with the product of both lengths.
MAX_TOKENS_PER_BLOCK = 4_000


@dataclass(frozen=True)
class DiffStats:
    inserted_chars: int
    deleted_chars: int

    @property
    def changed(self) -> bool:
        return bool(self.inserted_chars or self.deleted_chars)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _mark(tag: str, text: str) -> Markup:
    if not text:
        return Markup("")
    return Markup("<{0}>{1}</{0}>").format(tag, escape(text))


def _token_diff(original: str, edited: str, parts: list[Markup], counts: list[int]) -> None:
    before, after = tokenize(original), tokenize(edited)
    if len(before) + len(after) > MAX_TOKENS_PER_BLOCK:
        parts.append(_mark("del", original))
        parts.append(_mark("ins", edited))
        counts[0] += len(edited)
        counts[1] += len(original)
        return
    matcher = SequenceMatcher(None, before, after, autojunk=False)
    for operation, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        removed = "".join(before[a_start:a_end])
        added = "".join(after[b_start:b_end])
        if operation == "equal":
            parts.append(escape(removed))
            continue
        parts.append(_mark("del", removed))
        parts.append(_mark("ins", added))
        counts[0] += len(added)
        counts[1] += len(removed)


def render_diff(original: str, edited: str) -> tuple[Markup, DiffStats]:
    """Return the edit as HTML with <del> for removed and <ins> for added text, and the counts."""
    before_lines = original.splitlines(keepends=True)
    after_lines = edited.splitlines(keepends=True)
    parts: list[Markup] = []
    counts = [0, 0]
    matcher = SequenceMatcher(None, before_lines, after_lines, autojunk=False)
    for operation, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        removed = "".join(before_lines[a_start:a_end])
        added = "".join(after_lines[b_start:b_end])
        if operation == "equal":
            parts.append(escape(removed))
        elif operation == "replace":
            _token_diff(removed, added, parts, counts)
        else:
            parts.append(_mark("del", removed))
            parts.append(_mark("ins", added))
            counts[0] += len(added)
            counts[1] += len(removed)
    return Markup("").join(parts), DiffStats(inserted_chars=counts[0], deleted_chars=counts[1])
