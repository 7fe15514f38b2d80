"""A static HTML gallery of the figures of a run: one self-contained index.html, no JavaScript,
no external resources, only relative links, so the folder can be moved, zipped or opened from disk.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from .io import atomic_path

__all__ = ["write_gallery"]

_CSS = """
:root { --fg: #1d1d1f; --muted: #666; --line: #d9d9de; --bg: #fafafa; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 15px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
       sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; }
h2 a.anchor { color: var(--muted); text-decoration: none; font-weight: normal; margin-left: 6px; }
p.meta { color: var(--muted); margin: 0 0 20px; }
nav.toc { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
          margin-bottom: 28px; overflow-x: auto; }
nav.toc table { border-collapse: collapse; font-size: 13px; }
nav.toc th, nav.toc td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left;
                         white-space: nowrap; }
nav.toc td.num, nav.toc th.num { text-align: right; font-variant-numeric: tabular-nums; }
section.sample { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px;
                 margin-bottom: 28px; }
.scroll { overflow-x: auto; }
table.grid { border-collapse: separate; border-spacing: 10px 6px; }
table.grid th { text-align: left; vertical-align: bottom; font-size: 15px; padding: 0 2px; }
table.grid th.kind { text-align: right; vertical-align: middle; color: var(--muted); font-weight: 600;
                     font-size: 13px; white-space: nowrap; }
table.grid td { vertical-align: top; padding: 0; }
.metrics { display: block; color: var(--muted); font-weight: normal; font-size: 13px;
           font-variant-numeric: tabular-nums; }
figure { margin: 0; }
figure img { display: block; width: 380px; max-width: 100%; height: auto; border: 1px solid var(--line);
             border-radius: 4px; background: #fff; }
figure figcaption { font-size: 12px; color: var(--muted); margin-top: 2px; }
.missing { width: 380px; padding: 24px 8px; text-align: center; color: var(--muted); font-size: 13px;
           border: 1px dashed var(--line); border-radius: 4px; }
.comparison { margin-top: 18px; }
.comparison img { width: auto; max-width: 100%; max-height: 1400px; }
a img:hover { border-color: #888; }
.top { font-size: 13px; margin-top: 10px; display: inline-block; }
"""


def _rel_url(path: Any, output_dir: Path, what: str) -> tuple[str, Path]:
    """(URL to put in the page, file on disk) for a figure path relative to output_dir.

    Absolute paths inside output_dir are made relative; anything that would not survive moving the
    folder (absolute paths elsewhere, URLs, '..' leaving the folder) is refused with ValueError.
    """
    raw = os.fspath(path)
    if not raw:
        raise ValueError(f"{what}: empty path")
    if urlsplit(raw).scheme and not re.match(r"^[A-Za-z]:[\\/]", raw):
        raise ValueError(f"{what}: {raw!r} is a URL; the gallery links only to files in its folder")
    p = Path(raw)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(output_dir.resolve())
        except ValueError:
            raise ValueError(f"{what}: {raw!r} is outside the gallery folder {output_dir}") from None
    parts = PurePosixPath(p.as_posix()).parts
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ValueError(f"{what}: {raw!r} leaves the gallery folder")
    url = "/".join(quote(part) for part in parts)
    return url, output_dir / p


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return "n/a"


def _anchor(sample_id: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", sample_id).strip("-") or "sample"
    if not base[0].isalpha():
        base = "s-" + base
    anchor, n = base, 2
    while anchor in used:
        anchor, n = f"{base}-{n}", n + 1
    used.add(anchor)
    return anchor


def _ordered_kinds(kinds: Iterable[str], labels: Mapping[str, str]) -> list[str]:
    kinds = list(dict.fromkeys(kinds))
    known = [k for k in labels if k in kinds]
    return known + sorted(k for k in kinds if k not in labels)


def _link(label: str, href: str, output_dir: Path) -> str:
    url, _ = _rel_url(href, output_dir, label)
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>'


def _img(url: str, alt: str, caption: str | None = None) -> str:
    u, a = html.escape(url, quote=True), html.escape(alt, quote=True)
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><a href="{u}"><img src="{u}" alt="{a}" loading="lazy"></a>{cap}</figure>'


def write_gallery(
    output_dir: str | Path,
    samples: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    title: str = "Segmentation explanations",
    *,
    kind_labels: Mapping[str, str] | None = None,
    links: Sequence[tuple[str, str]] = (),
    check_files: bool = False,
) -> Path:
    """Write output_dir/index.html (atomically) and return its path.

    samples: [{"id": "sample0", "name": "<image name>",
               "figures": {kind: {class_name: relative_path}},   # kind: tpfpfn or a method name
               "comparison": relative_path,                       # optional
               "metrics": {class_name: {"iou": float, "dice": float}}}]   # optional
    Paths are relative to output_dir (absolute paths inside it are accepted and made relative).
    For every sample: a table with one column per class (classes in class_names order, then any other
    class named by the figures or metrics), one row per figure kind, IoU/Dice under each class name,
    and the comparison figure below. kind_labels: {kind: row label}, also the row order (kinds it does
    not name follow, sorted). links: (label, relative path) shown under the title (the evaluation
    report). check_files=True refuses figures missing on disk (ValueError).
    """
    labels = dict(kind_labels or {})
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    toc_rows, sections = [], []
    toc_classes: list[str] = []

    for i, sample in enumerate(samples):
        sid = str(sample.get("id", f"sample{i}"))
        name = str(sample.get("name", sid))
        anchor = _anchor(sid, used)
        figures: Mapping[str, Mapping[str, Any]] = sample.get("figures") or {}
        metrics: Mapping[str, Mapping[str, Any]] = sample.get("metrics") or {}
        named = [c for kind in figures.values() for c in (kind or {})] + list(metrics)
        classes = [c for c in class_names if c in named] + sorted({c for c in named if c not in class_names})
        kinds = _ordered_kinds(figures, labels)

        def url_of(path: Any, what: str) -> str:
            url, file = _rel_url(path, output_dir, what)
            if check_files and not file.is_file():
                raise ValueError(f"{what}: {file} does not exist")
            return url

        toc_rows.append((anchor, name, sid, metrics))
        for c in metrics:
            if c not in toc_classes:
                toc_classes.append(c)

        out = [
            f'<section class="sample" id="{html.escape(anchor, quote=True)}">',
            f'<h2>{html.escape(name)}<a class="anchor" href="#{html.escape(anchor, quote=True)}" '
            f'title="link to this sample">#</a></h2>',
        ]
        if sid != name:
            out.append(f'<p class="meta">{html.escape(sid)}</p>')
        if classes:
            out.append('<div class="scroll"><table class="grid"><thead><tr><th></th>')
            for c in classes:
                m = metrics.get(c)
                mtxt = (
                    f'<span class="metrics">IoU {_fmt(m.get("iou"))} · Dice {_fmt(m.get("dice"))}</span>'
                    if isinstance(m, Mapping)
                    else ""
                )
                out.append(f"<th>{html.escape(c)}{mtxt}</th>")
            out.append("</tr></thead><tbody>")
            for kind in kinds:
                label = labels.get(kind, kind)
                out.append(f'<tr><th class="kind" scope="row">{html.escape(label)}</th>')
                per_class = figures.get(kind) or {}
                for c in classes:
                    path = per_class.get(c)
                    if path:
                        url = url_of(path, f"sample {sid!r} {kind} {c!r}")
                        out.append(f"<td>{_img(url, f'{label}, {c}, {name}')}</td>")
                    else:
                        out.append(f'<td><div class="missing">no {html.escape(label)} figure</div></td>')
                out.append("</tr>")
            out.append("</tbody></table></div>")
        comparison = sample.get("comparison")
        if comparison:
            url = url_of(comparison, f"sample {sid!r} comparison")
            out.append(
                '<div class="comparison"><h3>Comparison of methods</h3>'
                f"{_img(url, f'comparison of methods, {name}')}</div>"
            )
        if not classes and not comparison:
            out.append('<p class="meta">No figures for this sample.</p>')
        out.append('<a class="top" href="#top">back to top</a></section>')
        sections.append("\n".join(out))

    order = {c: i for i, c in enumerate(class_names)}
    toc_classes.sort(key=lambda c: (order.get(c, len(order)), c))
    toc = ['<nav class="toc" aria-label="contents"><table><thead><tr><th>#</th><th>image</th>']
    toc += [f'<th class="num">IoU {html.escape(c)}</th>' for c in toc_classes]
    toc.append("</tr></thead><tbody>")
    for n, (anchor, name, _sid, metrics) in enumerate(toc_rows, 1):
        toc.append(
            f'<tr><td class="num">{n}</td><td><a href="#{html.escape(anchor, quote=True)}">{html.escape(name)}</a></td>'
        )
        for c in toc_classes:
            m = metrics.get(c)
            toc.append(f'<td class="num">{_fmt(m.get("iou")) if isinstance(m, Mapping) else ""}</td>')
        toc.append("</tr>")
    toc.append("</tbody></table></nav>")
    if not toc_rows:
        toc = ['<p class="meta">No samples.</p>']

    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            '<body id="top">',
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="meta">{len(toc_rows)} image{"s" if len(toc_rows) != 1 else ""}. '
            "Click a figure to open it at full size. TP: correctly predicted pixels, FP: predicted but not in the "
            "ground truth, FN: in the ground truth but missed.</p>",
            *(
                [f'<p class="meta">{" · ".join(_link(label, href, output_dir) for label, href in links)}</p>']
                if links
                else []
            ),
            *toc,
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )
    index = output_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return index
