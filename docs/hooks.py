"""MkDocs hook: the command-line reference, rendered from the parsers when the site is built.

A page holds markers that this hook replaces before MkDocs reads the Markdown:

    <!-- cli: commands -->            the table of `seedling-xai` commands (xai.cli.COMMANDS)
    <!-- cli: options scorecam -->    the options of `xai.cli.build_parser("scorecam")`, a table per
                                      --help section: every action's flags, value, default and help

Nothing of the tables is written by hand, so the reference cannot drift from `--help`.
`tests/test_docs.py` calls `render_options` directly.

The tutorials: each notebook of notebooks/ becomes the page tutorials/<name>.md (`on_files`), its markdown
cells as they are and its code cells as Python blocks, without outputs and without running anything; the
notebook itself is published beside it for download. Links in the notebooks are written for the repository
(../docs/faithfulness.md, 02_split_and_report.ipynb) and rewritten for the site (`site_links`).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

COMMANDS = ("scorecam", "gradcam", "occlusion", "uncertainty")  # the commands with an explain pipeline
MARKER = re.compile(r"^<!--[ \t]*cli:[ \t]*(commands|options[ \t]+(\w+))[ \t]*-->[ \t]*$", re.MULTILINE)
_DEFAULT = re.compile(r"\s*\(default: (?P<value>[^()]*(?:\([^()]*\)[^()]*)*)\)")
_TAKERS = re.compile(r"\s*\[(?P<takers>[^\[\]]+)\]$")
_GENERAL = {"options", "optional arguments"}  # argparse's title of the ungrouped flags (-h), by version
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
TUTORIALS = "tutorials"  # the site's folder of the notebooks' pages
_MD_LINK = re.compile(r"(\]\(\s*<?)([^)\s>]+)")  # the target of an inline Markdown link or image


def _escape(text: str) -> str:
    """Text for a cell of a Markdown table: no HTML, emphasis, links or column breaks from help text."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*_[]|":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


def _code(text: str) -> str:
    """Inline code in a table cell."""
    return "`" + text + "`"


def _value(action: argparse.Action) -> str:
    """What follows the flag: nothing for a switch, else its choices or its metavar, as many as it takes."""
    if action.nargs == 0:
        return "switch"
    if action.choices is not None:
        one = ", ".join(_code(str(c)) for c in action.choices)
    else:
        metavar = action.metavar if action.metavar is not None else action.dest.upper()
        one = _code(" ".join(metavar) if isinstance(metavar, tuple) else str(metavar))
    if action.nargs == "+":
        return f"{one} (one or more)"
    if isinstance(action.nargs, int) and not isinstance(action.metavar, tuple):
        return f"{one} ({action.nargs} values)"
    return one


def _split_help(action: argparse.Action) -> tuple[str, str, str]:
    """(help, default, the methods that take it) from an action's help as xai.cli writes it: a trailing
    "(default: X)" and, for a method option, a trailing "[method, ...]". A default that the help only
    describes stays in the help."""
    text = " ".join((action.help or "").split())
    if text == argparse.SUPPRESS:
        return "", "", ""
    default = ""
    found = list(_DEFAULT.finditer(text))
    if found and found[-1].end() == len(text):
        default, text = found[-1].group("value"), text[: found[-1].start()]
    takers = ""
    match = _TAKERS.search(text)
    if match:
        takers, text = match.group("takers"), text[: match.start()]
    if not default and found and found[-1].end() == len(text) and takers:  # "(default: X) [method]"
        default, text = found[-1].group("value"), text[: found[-1].start()]
    if not default:
        if action.nargs == 0:
            default = "off"
        elif action.default not in (None, False, argparse.SUPPRESS):
            default = str(action.default)
    return text, default, takers


def _table(actions: list[argparse.Action], exclusive: dict[int, str]) -> list[str]:
    rows = [_split_help(a) for a in actions]
    with_takers = any(takers for _, _, takers in rows)
    header = ["flag", "value", "default", "meaning", *(["methods"] if with_takers else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for action, (text, default, takers) in zip(actions, rows, strict=True):
        flags = ", ".join(_code(f) for f in action.option_strings)
        meaning = _escape(text) + (f" ({exclusive[id(action)]})" if id(action) in exclusive else "")
        cells = [flags, _value(action), _escape(default) if default else "", meaning]
        if with_takers:
            cells.append(_escape(takers))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _exclusive_notes(parser: argparse.ArgumentParser) -> dict[int, str]:
    """A note per action of a mutually exclusive group: which flags it excludes, and whether one is required."""
    notes: dict[int, str] = {}
    for group in parser._mutually_exclusive_groups:
        members = group._group_actions
        for action in members:
            others = ", ".join(_code(o.option_strings[0]) for o in members if o is not action)
            notes[id(action)] = ("required: this or " if group.required else "not with ") + others
    return notes


def render_options(command: str) -> str:
    """The options of `command`'s parser as Markdown: a heading and a table per --help section."""
    from xai.cli import build_parser

    parser = build_parser(command, prog=f"seedling-xai {command}")
    exclusive = _exclusive_notes(parser)
    out = [_escape(parser.description or ""), ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings]
        if not actions:
            continue
        title = "general" if group.title in _GENERAL else str(group.title)
        short = title.split(" (")[0]  # "method options (each applies ...)" -> #scorecam-method-options
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{command} {short}".lower()).strip("-")
        out += [f"### {_escape(title)} {{#{anchor}}}", "", *_table(actions, exclusive), ""]
    return "\n".join(out)


def render_commands() -> str:
    """The `seedling-xai` commands with what each does, from xai.cli.COMMANDS."""
    from xai.cli import COMMANDS as ALL

    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| {_code('seedling-xai ' + name)} | {_escape(what)} |" for name, what in ALL.items()]
    return "\n".join(lines)


def render_markers(markdown: str) -> str:
    """The page with every marker replaced by what it names."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "commands":
            return render_commands()
        command = match.group(2)
        if command not in COMMANDS:
            raise ValueError(f"docs: no command {command!r} to render (known: {', '.join(COMMANDS)})")
        return render_options(command)

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """MkDocs event: render the markers of every page (only the CLI reference has any)."""
    return render_markers(markdown) if "<!-- cli:" in markdown else markdown


def tutorial_pages() -> dict[str, Path]:
    """The site's page of each notebook (tutorials/<name>.md, by the notebook's name) and its notebook."""
    return {f"{TUTORIALS}/{path.stem}.md": path for path in sorted(NOTEBOOKS.glob("*.ipynb"))}


def notebook_cells(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of each non-empty markdown and code cell of a notebook, in order."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for cell in cells:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] in ("markdown", "code") and source.strip():
            found.append((cell["cell_type"], source.strip("\n")))
    return found


def site_links(markdown: str) -> str:
    """A notebook's links as the site has them: ../docs/X to X's page (one folder up from tutorials/), a
    sibling notebook to its page."""

    def replace(match: re.Match[str]) -> str:
        target = match.group(2)
        path, hash_, anchor = target.partition("#")
        if path.startswith("../docs/"):
            path = "../" + path[len("../docs/") :]
        elif path.endswith(".ipynb") and "/" not in path and (NOTEBOOKS / path).is_file():
            path = path[: -len(".ipynb")] + ".md"
        return match.group(1) + path + hash_ + anchor

    return _MD_LINK.sub(replace, markdown)


def render_notebook(path: Path) -> str:
    """A notebook as a page: markdown cells as they are, code cells as Python blocks, and after the title a
    note that names the notebook and links it for download."""
    note = (
        f'!!! note "A notebook: [{path.name}]({path.name})"\n'
        f"    This page is `notebooks/{path.name}` of the repository, shown without its outputs. Run it to see "
        "the figures and numbers: in the environment where seedling-xai is installed, `pip install notebook`, "
        "then `jupyter notebook notebooks/` from the repository's root. `make test` runs every notebook."
    )
    parts = []
    for kind, source in notebook_cells(path):
        parts.append(site_links(source) if kind == "markdown" else f"```python\n{source}\n```")
        if len(parts) == 1:
            title, _, rest = parts[0].partition("\n")
            parts[0] = f"{title}\n\n{note}\n{rest}" if title.startswith("# ") else f"{note}\n\n{parts[0]}"
    return "\n\n".join(parts) + "\n"


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """MkDocs event: a page per notebook (tutorials/<name>.md) and the notebook beside it."""
    from mkdocs.structure.files import File

    for uri, path in tutorial_pages().items():
        files.append(File.generated(config, uri, content=render_notebook(path)))
        files.append(File.generated(config, f"{TUTORIALS}/{path.name}", abs_src_path=str(path)))
    return files
