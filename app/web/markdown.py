"""Markdown to HTML for guidelines, prompts and responses, safe for untrusted text."""

from markdown_it import MarkdownIt
from markupsafe import Markup

# html=False turns raw HTML in the source into escaped text; markdown-it's validateLink rejects
# javascript:, vbscript:, file: and most data: URLs, so such links render as plain text.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
_md.enable("strikethrough")


def render_markdown(text: str | None) -> Markup:
    return Markup(_md.render(text or ""))
