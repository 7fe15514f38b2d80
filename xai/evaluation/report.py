"""The evaluation report of a run: metrics.csv, metrics.json, report.md, report.html and its plots.

Input: the evaluated sample records (xai.pipeline.records.SampleRecord with `metrics` rows, `curves`
and `sanity`). Per class and variant every metric is summarised as its mean over samples with a 95%
bootstrap interval and n (xai.evaluation.stats); Score-CAM − Grad-CAM is a paired difference per class
over the samples that have both. Plots: mean deletion and insertion curves per class (a line per
variant, both schedules), and the cascading-randomisation curve (mean Spearman per step).
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, write_json, write_text
from .stats import Estimate, bootstrap_mean, paired_difference

FIELDS = ["sample", "image", "class", "method", "variant", "metric", "value", "reason"]
REPORT_DIR = "report"
# Metrics of the per-class tables, in order: (name, column title, better).
TABLE = [
    ("deletion_auc_linear", "Deletion AUC (linear)", "lower"),
    ("deletion_auc_area", "Deletion AUC (area)", "lower"),
    ("insertion_auc_linear", "Insertion AUC (linear)", "higher"),
    ("insertion_auc_area", "Insertion AUC (area)", "higher"),
    ("road_gap", "ROAD LeRF−MoRF", "higher"),
    ("average_drop", "Avg Drop %", "lower"),
    ("average_increase", "Avg Increase %", "higher"),
    ("energy_pointing_game", "Energy pointing game", "higher"),
    ("pointing_game", "Pointing game", "higher"),
    ("rank_accuracy", "Rank accuracy", "higher"),
    ("seconds", "Seconds / sample", "lower"),
]
CURVES = ("deletion", "insertion")
SCHEDULES = ("linear", "area")


def long_rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    """metrics.csv rows: every metric of every evaluated sample, class and variant."""
    out = []
    for r in records:
        for row in r.metrics:
            out.append({"sample": r.id, "image": r.name, **{k: row.get(k) for k in FIELDS[2:]}})
    return out


def _values(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(class, variant, metric): {sample: value}} of the finite values."""
    table: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for row in rows:
        v = row["value"]
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
            table[(row["class"], row["variant"], row["metric"])][row["sample"]] = float(v)
    return table


def summarise(
    rows: list[dict[str, Any]], classes: Sequence[str], variants: Sequence[str], metrics: Sequence[str]
) -> dict[str, dict[str, dict[str, Estimate]]]:
    """{class: {variant: {metric: Estimate}}}."""
    values = _values(rows)
    return {
        c: {v: {m: bootstrap_mean(list(values.get((c, v, m), {}).values())) for m in metrics} for v in variants}
        for c in classes
    }


def _pair(variants: Sequence[str], methods: dict[str, str]) -> tuple[str, str] | None:
    """The Score-CAM and Grad-CAM variants compared pairwise: the first of each."""
    score = next((v for v in variants if methods.get(v) == "scorecam"), None)
    grad = next((v for v in variants if methods.get(v) == "gradcam"), None)
    return (score, grad) if score and grad else None


def _mean_curves(records: Iterable[Any]) -> dict[tuple[str, str, str], np.ndarray]:
    """{(class, variant, curve name): mean curve over the samples that have it}."""
    acc: dict[tuple[str, str, str], list[list[float]]] = defaultdict(list)
    for r in records:
        for variant, per_class in (r.curves or {}).items():
            for cname, curves in per_class.items():
                for name, ys in curves.items():
                    if ys and all(y is not None and math.isfinite(y) for y in ys):
                        acc[(cname, variant, name)].append(ys)
    return {k: np.mean(np.asarray(v, dtype=np.float64), axis=0) for k, v in acc.items()}


def _sanity(records: Iterable[Any]) -> tuple[list[str], dict[str, np.ndarray]]:
    """(steps, {variant: mean Spearman per step over samples and classes})."""
    steps: list[str] = []
    acc: dict[str, list[list[float]]] = defaultdict(list)
    for r in records:
        for variant, entry in (r.sanity or {}).items():
            steps = steps or list(entry["steps"])
            for rhos in entry["rho"].values():
                if len(rhos) == len(steps) and all(x is not None and math.isfinite(x) for x in rhos):
                    acc[variant].append(rhos)
    return steps, {v: np.mean(np.asarray(x), axis=0) for v, x in acc.items()}


def evaluation_cost(records: Iterable[Any]) -> dict[str, Any] | None:
    """Mean forwards per sample by metric, per evaluated (map, class) pair, and seconds per sample."""
    per_metric: dict[str, list[int]] = defaultdict(list)
    seconds, per_pair, n = [], [], 0
    for r in records:
        cost = getattr(r, "evaluation_cost", None) or {}
        if not cost.get("forwards"):
            continue
        n += 1
        for metric, count in cost["forwards"].items():
            per_metric[metric].append(int(count))
        seconds.append(float(cost.get("seconds", 0.0)))
        pairs = {
            (row["variant"], row["class"])
            for row in r.metrics
            if row["metric"] == "deletion_auc_linear" and row.get("value") is not None
        }
        perturbed = sum(c for m, c in cost["forwards"].items() if m not in ("unperturbed", "shared"))
        if pairs:
            per_pair.append(perturbed / len(pairs))
    if not n:
        return None
    return {
        "samples": n,
        "forwards_per_sample": {m: float(np.sum(v)) / n for m, v in per_metric.items()},
        "forwards_per_map_and_class": float(np.mean(per_pair)) if per_pair else None,
        "seconds_per_sample": float(np.mean(seconds)),
    }


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")


def plot_curves(
    curves: dict[tuple[str, str, str], np.ndarray], cname: str, variants: Sequence[str], path: Path
) -> bool:
    """Mean deletion and insertion curves of one class (rows: schedules; a line per variant)."""
    if not any((cname, v, f"{k}_{s}") in curves for v in variants for k in CURVES for s in SCHEDULES):
        return False
    fig = _figure(10, 7.2)
    axes = fig.subplots(2, 2, sharey=True)
    colors = _colors(len(variants))
    for i, schedule in enumerate(SCHEDULES):
        for j, kind in enumerate(CURVES):
            ax = axes[i, j]
            for v, color in zip(variants, colors, strict=True):
                ys = curves.get((cname, v, f"{kind}_{schedule}"))
                if ys is not None:
                    ax.plot(
                        np.linspace(0, 1, len(ys)),
                        ys,
                        label=v,
                        color=color,
                        lw=1.6,
                        ls="--" if v in ("random", "probability") else "-",
                    )
            unit = "of the photograph's pixels" if schedule == "linear" else "of 2× the class's area"
            ax.set_title(
                f"{kind.capitalize()} ({schedule}): {'lower' if kind == 'deletion' else 'higher'} AUC is better",
                fontsize=10,
            )
            ax.set_xlabel(f"fraction {'deleted' if kind == 'deletion' else 'inserted'} ({unit})", fontsize=9)
            ax.set_ylabel(f"mean P({cname}) over its region", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{cname}: mean perturbation curves", fontsize=12)
    _save(fig, path)
    return True


def plot_sanity(steps: list[str], sanity: dict[str, np.ndarray], path: Path) -> bool:
    """Mean Spearman ρ of the randomised maps with the original, per cascading-randomisation step."""
    if not steps or not sanity:
        return False
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    for (v, rho), color in zip(sanity.items(), _colors(len(sanity)), strict=True):
        ax.plot(range(len(steps)), rho, marker="o", label=v, color=color, lw=1.6)
    ax.set_xticks(range(len(steps)), steps, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylim(-0.2, 1.05)
    ax.set_ylabel("Spearman ρ with the original map", fontsize=9)
    ax.set_xlabel("randomised up to (cumulative, from the output)", fontsize=9)
    ax.set_title("Cascading randomisation (Adebayo et al. 2018): a faithful method falls towards 0", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)
    return True


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(out: Path, records: list[Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """metrics.csv, metrics.json, report.md, report.html and report/*.png of the evaluated records;
    None when no record carries metrics."""
    evaluated = [r for r in records if r.metrics]
    if not evaluated:
        return None
    rows = long_rows(evaluated)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in FIELDS})
    write_text(out / "metrics.csv", buf.getvalue())

    classes = list(dict.fromkeys(row["class"] for row in rows))
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    methods = {row["variant"]: row["method"] for row in rows}
    names = [m for m, _, _ in TABLE] + sorted({row["metric"] for row in rows} - {m for m, _, _ in TABLE})
    summary = summarise(rows, classes, variants, names)
    pair = _pair(variants, methods)
    values = _values(rows)
    paired = {}
    if pair:
        paired = {
            c: {
                m: paired_difference(values.get((c, pair[0], m), {}), values.get((c, pair[1], m), {}))
                for m, _, _ in TABLE
            }
            for c in classes
        }
    curves = _mean_curves(evaluated)
    steps, sanity = _sanity(evaluated)
    cost = evaluation_cost(evaluated)
    plots: dict[str, str] = {}
    for c in classes:
        rel = f"{REPORT_DIR}/curves_{c}.png"
        if plot_curves(curves, c, variants, out / rel):
            plots[c] = rel
    sanity_plot = f"{REPORT_DIR}/sanity.png" if plot_sanity(steps, sanity, out / REPORT_DIR / "sanity.png") else None

    write_json(
        out / "metrics.json",
        {
            "settings": settings,
            "classes": classes,
            "variants": {v: methods[v] for v in variants},
            "summary": {
                c: {v: {m: e.as_dict() for m, e in per.items() if e.n} for v, per in by_v.items()}
                for c, by_v in summary.items()
            },
            "paired_difference": {
                "minuend": pair[0],
                "subtrahend": pair[1],
                "per_class": {c: {m: e.as_dict() for m, e in per.items() if e.n} for c, per in paired.items()},
            }
            if pair
            else None,
            "sanity": {"steps": steps, "mean_spearman": {v: [float(x) for x in rho] for v, rho in sanity.items()}},
            "cost": cost,
            "rows": rows,
        },
    )
    sections = _sections(
        classes, variants, summary, paired, pair, plots, sanity_plot, steps, sanity, settings, len(evaluated), cost
    )
    write_text(out / "report.md", _markdown(sections))
    write_text(out / "report.html", _html(sections))
    return {"classes": classes, "variants": variants, "plots": plots, "sanity_plot": sanity_plot}


def _sections(
    classes: list[str],
    variants: list[str],
    summary: dict[str, Any],
    paired: dict[str, Any],
    pair: tuple[str, str] | None,
    plots: dict[str, str],
    sanity_plot: str | None,
    steps: list[str],
    sanity: dict[str, np.ndarray],
    settings: dict[str, Any],
    n: int,
    cost: dict[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    """The report as (kind, content) items, rendered to Markdown and HTML alike."""
    s: list[tuple[str, Any]] = [("h1", f"Faithfulness of the explanations: {settings.get('model', '')}")]
    s.append(
        (
            "p",
            f"{n} sample(s) of the {settings.get('split', '?')} split; region "
            f"'{settings.get('region', 'pred')}'. Every cell is the mean over samples with a 95% bootstrap "
            "interval [low, high] and the number of samples n where the value exists (a class absent from "
            "its region has none).",
        )
    )
    s.append(("list", settings.get("notes", [])))
    for c in classes:
        s.append(("h2", f"Class {c}"))
        columns = [(m, t, b) for m, t, b in TABLE if any(summary[c][v][m].n for v in variants)]
        header = ["variant"] + [f"{t} ({'↓' if b == 'lower' else '↑'})" for _, t, b in columns]
        rows = [[v] + [summary[c][v][m].text() for m, _, _ in columns] for v in variants]
        s.append(("table", (header, rows)))
        extra = sorted(m for m in summary[c][variants[0]] if m.startswith("pearson"))
        fast = [[v, summary[c][v][m].text(4)] for v in variants for m in extra if summary[c][v][m].n]
        if fast:
            s.append(
                (
                    "p",
                    "Fast variants: Pearson correlation of each map with full Score-CAM's (same settings, "
                    "all channels).",
                )
            )
            s.append(("table", (["variant", "Pearson r vs full"], fast)))
        if pair and paired.get(c):
            diff = [[t, paired[c][m].text()] for m, t, _ in TABLE if paired[c][m].n]
            if diff:
                s.append(("p", f"Paired difference {pair[0]} − {pair[1]} (per sample, then averaged):"))
                s.append(("table", (["metric", "difference"], diff)))
        if c in plots:
            s.append(("img", (plots[c], f"Mean deletion and insertion curves, class {c}")))
    if cost:
        s.append(("h2", "Cost of the evaluation"))
        per_pair = cost["forwards_per_map_and_class"]
        s.append(
            (
                "p",
                f"Mean over {cost['samples']} sample(s): {sum(cost['forwards_per_sample'].values()):.0f} forward "
                f"passes and {cost['seconds_per_sample']:.1f} s per sample"
                + (f", {per_pair:.1f} perturbed forwards per map and class" if per_pair is not None else "")
                + " (the maps of --variants and the sanity check included in the seconds).",
            )
        )
        s.append(
            (
                "table",
                (["metric", "forwards per sample"], [[m, f"{v:.1f}"] for m, v in cost["forwards_per_sample"].items()]),
            )
        )
    if sanity_plot:
        s.append(("h2", "Sanity check: cascading randomisation"))
        rows = [[v, *(f"{x:.3f}" for x in rho)] for v, rho in sanity.items()]
        s.append(("table", (["variant", *steps], rows)))
        s.append(("img", (sanity_plot, "Cascading randomisation")))
    return s


def _markdown(sections: list[tuple[str, Any]]) -> str:
    out = []
    for kind, content in sections:
        if kind == "h1":
            out.append(f"# {content}\n")
        elif kind == "h2":
            out.append(f"## {content}\n")
        elif kind == "p":
            out.append(f"{content}\n")
        elif kind == "list":
            out.extend(f"- {item}" for item in content)
            out.append("")
        elif kind == "table":
            out.append(_md_table(*content) + "\n")
        elif kind == "img":
            out.append(f"![{content[1]}]({content[0]})\n")
    return "\n".join(out)


_CSS = """body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px 32px;color:#1d1d1f}
table{border-collapse:collapse;margin:8px 0 18px;font-size:12.5px}th,td{border:1px solid #d9d9de;padding:3px 8px;
text-align:left;font-variant-numeric:tabular-nums}th{background:#f4f4f6}img{max-width:100%;border:1px solid #d9d9de}"""


def _html(sections: list[tuple[str, Any]]) -> str:
    body = []
    title = "Faithfulness report"
    for kind, content in sections:
        if kind == "h1":
            title = content
            body.append(f"<h1>{html.escape(content)}</h1>")
        elif kind == "h2":
            body.append(f"<h2>{html.escape(content)}</h2>")
        elif kind == "p":
            body.append(f"<p>{html.escape(content)}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in content) + "</ul>")
        elif kind == "table":
            body.append(_html_table(*content))
        elif kind == "img":
            src = html.escape(content[0], quote=True)
            body.append(f'<p><a href="{src}"><img src="{src}" alt="{html.escape(content[1], quote=True)}"></a></p>')
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + '\n<p><a href="index.html">gallery</a></p>'
        "</body></html>\n"
    )
