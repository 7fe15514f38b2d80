"""The documentation without building it: every relative link and image of README.md and docs/*.md points
at a file (and a heading) that exists, the README stays a landing page, and the command-line reference that
docs/hooks.py renders at build time lists every flag of the parsers."""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*(?:\{[ \t]*#([\w.-]+)[ \t]*\})?[ \t]*$", re.MULTILINE)
MKDOCSTRINGS = re.compile(r"^:::[ \t]+([\w.]+)", re.MULTILINE)


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """The Markdown without code blocks and inline code (links there are examples, not links)."""
    text = FENCE.sub("", text)
    text = re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.MULTILINE)  # indented code
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(page.read_text(encoding="utf-8")))]


def _external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None  # https:, mailto:, ...


def _mkdocs_slug(text: str) -> str:
    """Python-Markdown's toc slugify (what MkDocs gives a heading without an explicit id)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _github_slug(text: str) -> str:
    """GitHub's anchor of a README heading."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def _anchors(page: Path) -> frozenset[str]:
    """The ids a page's headings get: explicit {#id}, else the slug; README's as GitHub makes them, the
    docs' as MkDocs does (the CLI reference after its markers are rendered, the API reference with the
    ids mkdocstrings gives every object it documents)."""
    text = page.read_text(encoding="utf-8")
    if page.parent == DOCS and "<!-- cli:" in text:
        text = _hooks().render_markers(text)
    slug = _github_slug if page.name == "README.md" else _mkdocs_slug
    found = {explicit or slug(re.sub(r"[`*_]", "", title)) for title, explicit in HEADING.findall(FENCE.sub("", text))}
    return frozenset(found | set(MKDOCSTRINGS.findall(text)))


def _anchor_exists(page: Path, anchor: str) -> bool:
    anchors = _anchors(page)
    # a member of a documented module or class (reference.md#xai.methods.base.Attribution)
    return anchor in anchors or any(anchor.startswith(a + ".") for a in anchors if "." in a)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_point_at_files_that_exist(page: Path) -> None:
    broken = []
    for target in _links(page):
        if _external(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and not _anchor_exists(dest, anchor):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_sees_links_and_images() -> None:
    readme = _links(ROOT / "README.md")
    assert "docs/demo_comparison.jpg" in readme
    assert any(t.startswith("docs/") and t.endswith(".md") for t in readme)
    assert "real_seedling.jpg" in _links(DOCS / "data.md")
    assert "evidence_curves_root.jpg" in _links(DOCS / "evidence.md")


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", config, re.MULTILINE))
    assert listed == {p.name for p in DOCS.glob("*.md")}


def test_readme_is_a_landing_page() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "make test" in text and "what CI runs" in text
    assert "seed 000" not in text.lower()


@pytest.mark.parametrize("command", ["scorecam", "gradcam", "occlusion", "uncertainty"])
def test_cli_reference_lists_every_flag_of_the_parser(command: str) -> None:
    from xai.cli import build_parser

    page = _hooks().render_options(command)
    parser = build_parser(command)
    flags = [f for action in parser._actions for f in action.option_strings]
    assert "--model_path" in flags and "--batch_size" in flags
    missing = [f for f in flags if f"`{f}`" not in page]
    assert not missing, f"the reference of {command} lacks {missing}"
    for title in ("model and samples", "model and data", "run", "method options"):
        assert f"### {title} " in page
    assert "| `--split` | `train`, `val`, `test` | test |" in page  # flag, values, default from the help


def test_cli_reference_page_has_a_marker_per_command() -> None:
    hooks = _hooks()
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert [m.group(2) for m in hooks.MARKER.finditer(text) if m.group(2)] == list(hooks.COMMANDS)
    assert "<!-- cli:" not in hooks.render_markers("<!-- cli: commands -->\n")
