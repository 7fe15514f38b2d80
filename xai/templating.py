"""HTML and Markdown pages from the package's templates (xai/templates, jinja2): one style sheet.

Filters of every template: `anchor` (the id of a heading, as GitHub makes it from its text, so that
"#anchor" links the same heading in report.html and in report.md rendered on GitHub) and `md` (text
escaped for Markdown: a name stays text, never markup or a table's column; `md(False)` leaves square
brackets, for text that is no link's).
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["anchor", "markdown_text", "render_template"]

_MARKDOWN = re.compile(r"([\\`*<|\[\]])")
_MARKDOWN_NO_BRACKETS = re.compile(r"([\\`*<|])")


def anchor(text: str) -> str:
    """The id of a heading with this text (GitHub's rule: lower case, only word characters, spaces and
    hyphens kept, spaces as hyphens; MkDocs agrees on ASCII text with single spaces): "Class root" ->
    "class-root".

    Args:
        text: the heading's text.

    Returns:
        The id, for href="#id".
    """
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def markdown_text(text: Any, brackets: bool = True) -> str:
    """text with Markdown's markup characters backslash-escaped (`\\`, backticks, `*`, `<` (HTML), `|` (a
    table's column) and, unless brackets is False, `[` and `]`), so that it renders as the same text.

    Args:
        text: any value (its str()).
        brackets: also escape square brackets (a link's text; intervals "[low, high]" need not).

    Returns:
        The escaped text.
    """
    return (_MARKDOWN if brackets else _MARKDOWN_NO_BRACKETS).sub(r"\\\1", str(text))


@functools.cache
def _environment(autoescape: bool) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("xai", "templates"),
        autoescape=autoescape,
        keep_trailing_newline=True,
        trim_blocks=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["anchor"] = anchor
    env.filters["md"] = markdown_text
    return env


def render_template(name: str, **context: Any) -> str:
    """The page `name` (report.html.j2, gallery.html.j2, report.md.j2) with `context`; .html templates
    escape every value."""
    return _environment(name.endswith(".html.j2")).get_template(name).render(**context)
