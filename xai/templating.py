"""HTML and Markdown pages from the package's templates (xai/templates, jinja2): one style sheet."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["render_template"]


@functools.cache
def _environment(autoescape: bool) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("xai", "templates"),
        autoescape=autoescape,
        keep_trailing_newline=True,
        trim_blocks=False,
        undefined=jinja2.StrictUndefined,
    )


def render_template(name: str, **context: Any) -> str:
    """The page `name` (report.html.j2, gallery.html.j2, report.md.j2) with `context`; .html templates
    escape every value."""
    return _environment(name.endswith(".html.j2")).get_template(name).render(**context)
