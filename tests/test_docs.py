"""The documentation without building it: every relative link and image of README.md, docs/*.md and the
notebooks points at a file (and a heading) that exists, the README stays a landing page, the command-line
reference that docs/hooks.py renders at build time lists every flag of the parsers, and every notebook is a
tutorial page of the site, stored without outputs."""

from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
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


def _markdown_of(page: Path) -> str:
    """A page's Markdown; a notebook's markdown cells."""
    if page.suffix == ".ipynb":
        return "\n\n".join(source for kind, source in _hooks().notebook_cells(page) if kind == "markdown")
    return page.read_text(encoding="utf-8")


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(_markdown_of(page)))]


@cache
def _generated() -> dict[Path, Path]:
    """The pages docs/hooks.py adds to the site (docs/tutorials/<name>.md), with the notebook of each."""
    return {DOCS / uri: notebook for uri, notebook in _hooks().tutorial_pages().items()}


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
    text = _hooks().render_notebook(_generated()[page]) if page in _generated() else _markdown_of(page)
    if page.parent == DOCS and "<!-- cli:" in text:
        text = _hooks().render_markers(text)
    slug = _github_slug if page.name == "README.md" else _mkdocs_slug
    found = {explicit or slug(re.sub(r"[`*_]", "", title)) for title, explicit in HEADING.findall(FENCE.sub("", text))}
    return frozenset(found | set(MKDOCSTRINGS.findall(text)))


def _anchor_exists(page: Path, anchor: str) -> bool:
    anchors = _anchors(page)
    # a member of a documented module or class (reference.md#xai.methods.base.Attribution)
    return anchor in anchors or any(anchor.startswith(a + ".") for a in anchors if "." in a)


@pytest.mark.parametrize("page", PAGES + NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_point_at_files_that_exist(page: Path) -> None:
    broken = []
    for target in _links(page):
        if _external(target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if dest in _generated():  # a tutorial's page: its anchors are the notebook's headings
            if anchor and not _anchor_exists(dest, anchor):
                broken.append(f"{target}: no heading #{anchor} in {_generated()[dest].relative_to(ROOT)}")
        elif not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix in (".md", ".ipynb") and not _anchor_exists(dest, anchor):
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


def test_every_notebook_is_a_tutorial_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = re.findall(r":\s*tutorials/([\w-]+)\.md\s*$", config, re.MULTILINE)
    assert listed == [p.stem for p in NOTEBOOKS]
    assert len(NOTEBOOKS) == 5


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs_for_the_python3_kernel(notebook: Path) -> None:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith("# ") and "untrained" in first  # a title, and what the tiny model can show


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_the_page_of_a_notebook_links_as_the_site_has_its_files(notebook: Path) -> None:
    """The page shows every cell (code as Python blocks, no output), and its links, written for the
    repository (../docs/x.md, 02_x.ipynb), point at pages of the site (../x.md, 02_x.md)."""
    hooks = _hooks()
    page = hooks.render_notebook(notebook)
    cells = hooks.notebook_cells(notebook)
    assert page.count("```python\n") >= sum(kind == "code" for kind, _ in cells)
    assert f"]({notebook.name})" in page  # the download link of the notebook, published beside the page
    here = DOCS / "tutorials"
    broken = []
    for target in [m.group(1) for m in LINK.finditer(_prose(page))]:
        path = target.partition("#")[0]
        if _external(target) or not path or path == notebook.name:
            continue
        dest = (here / path).resolve()
        if not (dest.exists() or dest in _generated()):
            broken.append(target)
    assert not broken, f"{notebook.name}'s page links to no page: {broken}"


def test_site_links_rewrite_only_what_the_site_moves() -> None:
    hooks = _hooks()
    text = "[a](../docs/faithfulness.md#how-to-read-a-report) [b](02_split_and_report.ipynb) [c](https://x.org/y.ipynb)"
    assert hooks.site_links(text) == (
        "[a](../faithfulness.md#how-to-read-a-report) [b](02_split_and_report.md) [c](https://x.org/y.ipynb)"
    )
