"""The evaluation report of a run: metrics.csv, metrics.json, report.md, report.html and its plots.

Input: the evaluated sample records (xai.pipeline.records.SampleRecord with `metrics` rows, `curves`
and `sanity`). The report opens with its verdicts (xai.evaluation.verdicts): per class and question the best
method, whether it is separated from the next best and whether it beats the references, and every method
that does not beat the model-free baseline (the Sobel edge map). Per class and variant every declared
measure (xai.evaluation.measures) is summarised as its mean over samples with a 95% bootstrap interval and
n (xai.evaluation.stats), a method's mean that is not better than the model-free baseline's on that
measure, in its direction, marked BASELINE_MARK; each pair of variants the run asks for (default: the
first variant against each other one) gets its paired difference per class over the samples that have
both. Plots: mean deletion and insertion curves per class (a line per variant, both schedules), and the
cascading-randomisation curve (mean Spearman per step). The pages come from the package's templates
(xai.templating).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, write_csv, write_json, write_text
from ..run_files import RUN_FILES
from ..templating import anchor, render_template
from .context import METHOD as CONTEXT
from .context import is_context_row
from .context_report import context_sections
from .evaluate import REFERENCES, baselines
from .measures import Measure, measures
from .settings import split_pair
from .stats import MIN_VERDICT_SAMPLES, Estimate, bootstrap_mean, paired_difference
from .verdicts import (
    BETTER,
    NOT_SEPARATED,
    QUESTIONS,
    RANDOMISED_SPEARMAN,
    TOO_FEW,
    WORSE,
    Comparison,
    Verdict,
    verdicts,
)

FIELDS = ["sample", "image", "class", "method", "variant", "metric", "value", "reason"]
REPORT_DIR = RUN_FILES.report_plots
REFERENCE = "reference"  # the method of the reference maps' rows
BASELINE_MARK = "†"  # a method's mean not better than the model-free baseline's (tables, verdicts)
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


def pairs(
    variants: Sequence[str], methods: dict[str, str], asked: Iterable[str | Sequence[str]] = ()
) -> list[tuple[str, str]]:
    """The pairs (A, B) whose paired difference A − B the report shows: those asked for that the rows
    have, or by default the first variant against each other one (references aside)."""
    explained = [v for v in variants if methods.get(v) != REFERENCE]
    wanted = [split_pair(p) if isinstance(p, str) else (str(p[0]), str(p[1])) for p in asked]  # "A@B"; [A, B] before
    if wanted:
        return [(a, b) for a, b in wanted if a in variants and b in variants and a != b]
    return [(explained[0], v) for v in explained[1:]]


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
        perturbed = sum(c for m, c in cost["forwards"].items() if m not in ("unperturbed", "shared", CONTEXT))
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
    curves: dict[tuple[str, str, str], np.ndarray],
    cname: str,
    variants: Sequence[str],
    path: Path,
    references: Collection[str] = (),
) -> bool:
    """Mean deletion and insertion curves of one class (rows: schedules; a line per variant, dashed for the
    references)."""
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
                        ls="--" if v in references else "-",
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


def _arrow(m: Measure) -> str:
    return {"lower": " (↓)", "higher": " (↑)"}.get(m.better or "", "")


def write_report(out: Path, records: list[Any], settings: dict[str, Any]) -> dict[str, Any] | None:
    """metrics.csv, metrics.json, report.md, report.html and report/*.png of the evaluated records;
    None when no record carries metrics."""
    evaluated = [r for r in records if r.metrics]
    if not evaluated:
        return None
    every = long_rows(evaluated)
    write_csv(out / RUN_FILES.metrics_csv, every, FIELDS)
    rows = [row for row in every if not is_context_row(row)]  # the maps' rows; the model's matrix apart
    context, context_summary = context_sections(every, out, RUN_FILES.context_plot)
    classes = list(dict.fromkeys(row["class"] for row in rows))
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    methods = {row["variant"]: row["method"] for row in rows}
    declared = [m.name for m in measures(None)]
    names = declared + sorted({row["metric"] for row in rows} - set(declared))
    summary = summarise(rows, classes, variants, names)
    compared = pairs(variants, methods, settings.get("pairs") or ())
    paired = _paired(rows, classes, compared)
    plots = {c: f"{REPORT_DIR}/curves_{c}.png" for c in classes}
    curves = _mean_curves(evaluated)
    references = [v for v in variants if methods[v] == REFERENCE]
    plots = {c: rel for c, rel in plots.items() if plot_curves(curves, c, variants, out / rel, references)}
    steps, sanity = _sanity(evaluated)
    sanity_plot = f"{REPORT_DIR}/sanity.png" if plot_sanity(steps, sanity, out / REPORT_DIR / "sanity.png") else None
    cost = evaluation_cost(evaluated)
    found = report_verdicts(rows, evaluated, classes, variants, methods)
    document = {
        "settings": settings,
        "classes": classes,
        "variants": {v: methods[v] for v in variants},
        "references": _described(references),
        "measures": {m.name: {"title": m.title, "better": m.better, "table": m.report_table} for m in measures(None)},
        "verdicts": [v.as_dict() for v in found],
        "summary": {
            c: {v: {m: e.as_dict() for m, e in per.items() if e.n} for v, per in by_v.items()}
            for c, by_v in summary.items()
        },
        "paired_differences": [
            {
                "minuend": a,
                "subtrahend": b,
                "per_class": {c: {m: e.as_dict() for m, e in per.items() if e.n} for c, per in by_class.items()},
            }
            for (a, b), by_class in paired.items()
        ],
        "sanity": {"steps": steps, "mean_spearman": {v: [float(x) for x in rho] for v, rho in sanity.items()}},
        "cost": cost,
        "context": context_summary,
        "rows": every,
    }
    write_json(out / RUN_FILES.metrics_json, document)
    title = _title(settings)
    sections = [("h1", title), *_verdict_sections(found, classes, references), *_header(settings, len(evaluated))]
    for c in classes:
        sections += _class_sections(c, variants, summary[c], paired, plots.get(c), references, _baseline(references))
    sections += _claims_sections(rows, classes, variants, methods) + context
    sections += _cost_sections(cost) + _sanity_sections(steps, sanity, sanity_plot)
    write_text(out / RUN_FILES.report_md, render_template("report.md.j2", sections=sections))
    write_text(out / RUN_FILES.report_html, render_template("report.html.j2", sections=sections, title=title))
    return {"classes": classes, "variants": variants, "plots": plots, "sanity_plot": sanity_plot, "pairs": compared}


def _paired(
    rows: list[dict[str, Any]], classes: list[str], compared: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, dict[str, Estimate]]]:
    """{(A, B): {class: {measure: paired difference A − B}}} over the ranked measures of the main table."""
    values = _values(rows)
    ranked = [m.name for m in measures("main") if m.better]
    return {
        (a, b): {
            c: {m: paired_difference(values.get((c, a, m), {}), values.get((c, b, m), {})) for m in ranked}
            for c in classes
        }
        for a, b in compared
    }


Section = tuple[str, Any]
Fragments = list[tuple[str, str | None]]  # text, and the anchor it links to (None: plain text)
VERDICTS_TITLE = "Verdicts"
SAMPLES_TITLE = "Samples and settings"
SANITY_TITLE = "Sanity check: cascading randomisation"


def _class_title(c: str) -> str:
    return f"Class {c}"


def _sanity_values(records: Iterable[Any]) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(class, variant, RANDOMISED_SPEARMAN): {sample: |Spearman ρ| at the cascade's last step}}: the sanity
    check as one number per sample (the whole model randomised; 0: the map no longer resembles the original)."""
    table: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for r in records:
        for variant, entry in (r.sanity or {}).items():
            for cname, rhos in entry["rho"].items():
                last = rhos[-1] if rhos else None
                if last is not None and math.isfinite(last):
                    table[(cname, variant, RANDOMISED_SPEARMAN.name)][r.id] = abs(float(last))
    return table


def _reasons(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """{(class, metric): the most common reason of its missing values in metrics.csv}."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        if row.get("value") is None and row.get("reason"):
            counts[(row["class"], row["metric"])][str(row["reason"])] += 1
    return {key: count.most_common(1)[0][0] for key, count in counts.items()}


def report_verdicts(
    rows: list[dict[str, Any]], records: Iterable[Any], classes: list[str], variants: list[str], methods: dict[str, str]
) -> list[Verdict]:
    """The verdicts of the report (xai.evaluation.verdicts) from metrics.csv's rows and the records' sanity
    check: per class the questions' measures as means with intervals, paired differences between variants.

    Args:
        rows: metrics.csv's rows (long_rows).
        records: the evaluated sample records (their sanity entries).
        classes: the classes, in the report's order.
        variants: the evaluated variants, references included.
        methods: {variant: its method, "reference" for the references}.

    Returns:
        One Verdict per class, question and measure.
    """
    values = {**_values(rows), **_sanity_values(records)}
    names = [m.name for q in QUESTIONS for m in q.measures]
    stats = {
        c: {v: {m: bootstrap_mean(list(values.get((c, v, m), {}).values())) for m in names} for v in variants}
        for c in classes
    }

    def difference(c: str, m: str, a: str, b: str) -> Estimate:
        return paired_difference(values.get((c, a, m), {}), values.get((c, b, m), {}))

    references = [v for v in variants if methods.get(v) == REFERENCE]
    floors = [b for b in baselines() if b in references]
    return verdicts(stats, references, difference=difference, reasons=_reasons(rows), baselines=floors)


def _declared(references: Iterable[str]) -> list[str]:
    """The evaluated references that REFERENCES declares (a finalized older run may have others)."""
    return [v for v in REFERENCES if v in references]


def _described(references: Iterable[str]) -> dict[str, dict[str, str]]:
    """metrics.json's references: each evaluated one's description and role, as declared."""
    return {v: {"description": REFERENCES[v].description, "role": REFERENCES[v].role} for v in _declared(references)}


def _baseline(references: Sequence[str]) -> str | None:
    """The model-free baseline the tables mark against: the first evaluated (REFERENCES' order), or None."""
    return next((b for b in baselines() if b in references), None)


def _baseline_words(baseline: str) -> str:
    """'sobel (model-free baseline: the Sobel edge map of ...)', from its declaration."""
    declared = REFERENCES[baseline]
    return f"{baseline} ({declared.role}: {declared.description})"


def _verdict_sections(found: list[Verdict], classes: list[str], references: Sequence[str] = ()) -> list[Section]:
    """The report's first section: a table of verdicts per class (names link to the sections that show them),
    and per class every method against the model-free baseline."""
    described = "; ".join(f"{v}: {REFERENCES[v].description}" for v in _declared(references)) or "none evaluated"
    out: list[Section] = [
        ("h2", VERDICTS_TITLE),
        (
            "p",
            "Per class and question: the best method (references aside) by its mean over the samples, with its "
            "95% bootstrap interval and n. Separated: the 95% interval of the paired difference Δ = best − other "
            "(per sample, over the samples that have both, then averaged) excludes 0; under "
            f"{MIN_VERDICT_SAMPLES} paired samples it is too few to tell. The same test against the references "
            f"({described}). ↓: lower is better, ↑: higher is better. A summary "
            "of the tables below, not a replacement: they show every measure, both schedules and every method.",
        ),
    ]
    header = ["question", "measure", "best method: mean [95% interval] (n)", "separated from the next best?"]
    header.append("against the references")
    for c in classes:
        rows, asked = [], None
        for v in (v for v in found if v.class_name == c):
            rows.append([[("" if v.question == asked else v.question, None)], *_verdict_cells(v)])
            asked = v.question
        out.append(("linked", [(_class_title(c), anchor(_class_title(c))), (":", None)]))
        out.append(("linked_table", (header, rows)))
        out += _baseline_verdicts([v for v in found if v.class_name == c])
    return out


def _baseline_verdicts(found: list[Verdict]) -> list[Section]:
    """One class's methods against each model-free baseline: per method the measures on which it does not beat
    the baseline (marked, with the outcome and Δ method − baseline) and those on which it does."""
    out: list[Section] = []
    for b in dict.fromkeys(a.comparison.variant for v in found for a in v.baseline):
        short: dict[str, Fragments] = {}
        beats: dict[str, list[str]] = {}
        for v in found:
            target = anchor(_class_title(v.class_name))
            for a in (a for a in v.baseline if a.comparison.variant == b):
                beats.setdefault(a.method, [])
                if a.beats:
                    beats[a.method].append(v.measure.title + _arrow(v.measure))
                    continue
                words = f"{v.measure.title}{_arrow(v.measure)}: {_AGAINST[a.comparison.outcome]}"
                line = short.setdefault(a.method, [])
                line += ([("; ", None)] if line else []) + _compared(words, [a.comparison], target, v.measure.digits)
        target = anchor(_class_title(found[0].class_name))
        rows = [
            [
                [(m, target), (f" {BASELINE_MARK}" if m in short else "", None)],
                short.get(m) or [("—", None)],
                [(", ".join(titles) or "—", None)],
            ]
            for m, titles in beats.items()
        ]
        intro = (
            f"Every method against {_baseline_words(b)}, tested as the best method is against the references "
            f"(Δ = method − {b}); {BASELINE_MARK}: the method does not beat {b} on at least one measure."
        )
        out.append(("p", intro))
        out.append(("linked_table", (["method", f"does not beat {b} on", f"beats {b} on"], rows)))
    return out


_SEPARATION = {
    BETTER: "yes, from ",
    NOT_SEPARATED: "no, from ",
    WORSE: "no: worse than ",
    TOO_FEW: "too few samples to tell, from ",
}
_AGAINST = {
    BETTER: "beats ",
    NOT_SEPARATED: "not separated from ",
    WORSE: "worse than ",
    TOO_FEW: "too few samples to tell against ",
}


def _verdict_cells(v: Verdict) -> list[Fragments]:
    """A verdict's cells after its question: measure, best method, separation, references."""
    m = v.measure
    measure: Fragments = [(m.title + _arrow(m), None)]
    if v.best is None or v.estimate is None:
        return [measure, [(v.not_measured or "not measured", None)], [("—", None)], [("—", None)]]
    target = anchor(SANITY_TITLE if m.name == RANDOMISED_SPEARMAN.name else _class_title(v.class_name))
    best: Fragments = [(v.best, target), (f": {v.estimate.text(m.digits)}", None)]
    if v.runner_up is None:
        separation: Fragments = [("the only method with a value", None)]
    else:
        separation = _compared(_SEPARATION[v.runner_up.outcome], [v.runner_up], target, m.digits)
    by_outcome: dict[str, list[Comparison]] = {}
    for c in v.references:
        by_outcome.setdefault(c.outcome, []).append(c)
    against: Fragments = [("no reference measured", None)] if not v.references else []
    for i, (result, compared) in enumerate(by_outcome.items()):
        against += [("; ", None)] if i else []
        against += _compared(_AGAINST[result], compared, target, m.digits)
    return [measure, best, separation, against]


def _compared(words: str, compared: list[Comparison], target: str, digits: int) -> Fragments:
    """The words, then each variant (linked) with "(Δ best − variant)", or its own mean where no sample has
    both: "beats random (Δ ...) and probability (Δ ...)"."""
    out: Fragments = [(words, None)]
    for k, c in enumerate(compared):
        out += [(" and " if k == len(compared) - 1 else ", ", None)] if k else []
        detail = f"Δ {c.difference.text(digits)}" if c.difference is not None else f"mean {c.estimate.text(digits)}"
        out += [(c.variant, target), (f" ({detail})", None)]
    return out


def _samples_of(settings: dict[str, Any]) -> str:
    """What the samples are: a split, or photographs without masks (settings' split None, --images)."""
    if "split" in settings and settings["split"] is None:
        return "photographs without masks (the metrics that need a ground truth have none)"
    return f"the {settings.get('split', '?')} split"


def _title(settings: dict[str, Any]) -> str:
    return f"Faithfulness of the explanations: {settings.get('model', '')}"


def _header(settings: dict[str, Any], n: int) -> list[Section]:
    return [
        ("h2", SAMPLES_TITLE),
        (
            "p",
            f"{n} sample(s) of {_samples_of(settings)}; region "
            f"'{settings.get('region', 'pred')}'. Every cell is the mean over samples with a 95% bootstrap "
            "interval [low, high] and the number of samples n where the value exists (a class absent from "
            "its region has none).",
        ),
        ("list", settings.get("notes", [])),
    ]


def _class_sections(
    c: str,
    variants: list[str],
    summary: dict[str, dict[str, Estimate]],
    paired: dict[tuple[str, str], dict[str, dict[str, Estimate]]],
    plot: str | None,
    references: Sequence[str] = (),
    baseline: str | None = None,
) -> list[Section]:
    """One class: the main table (a row per variant), the fast variants' table, the paired differences
    (`paired`: {(A, B): {class: {measure: A − B}}}). A
    method's mean not better than the baseline's (the model-free one) is marked BASELINE_MARK."""
    out: list[Section] = [("h2", _class_title(c))]

    def cell(v: str, m: Measure) -> str:
        e = summary[v].get(m.name, _NONE)
        floor = summary[baseline].get(m.name, _NONE) if baseline is not None and v not in references else _NONE
        return e.text(m.digits) + (f" {BASELINE_MARK}" if _short_of(e, floor, m.better) else "")

    if baseline is not None:
        out.append(("p", _legend(baseline)))
    columns = [m for m in measures("main") if any(summary[v][m.name].n for v in variants if m.name in summary[v])]
    header = ["variant"] + [m.title + _arrow(m) for m in columns]
    out.append(("table", (header, [[v] + [cell(v, m) for m in columns] for v in variants])))
    claimed = [m for m in measures("claims") if any(summary[v].get(m.name, _NONE).n for v in variants)]
    if claimed:
        out.append(("p", "Stability, object size, instances, boundaries, noise and context (xai.metrics.claims):"))
        header = ["variant"] + [m.title + _arrow(m) for m in claimed]
        out.append(("table", (header, [[v] + [cell(v, m) for m in claimed] for v in variants])))
    for m in measures("fast"):
        fast = [[v, summary[v][m.name].text(m.digits)] for v in variants if summary[v].get(m.name, _NONE).n]
        if fast:
            out.append(("p", "Fast variants against the full variant of the same settings (all channels):"))
            out.append(("table", (["variant", m.title], fast)))
    titles = {m.name: m.title for m in measures("main")}
    for (a, b), by_class in paired.items():
        diff = [[titles[m], e.text()] for m, e in by_class[c].items() if e.n]
        if diff:
            out.append(("p", f"Paired difference {a} − {b} (per sample, then averaged):"))
            out.append(("table", (["metric", "difference"], diff)))
    if plot:
        out.append(("img", (plot, f"Mean deletion and insertion curves, class {c}")))
    return out


_NONE = Estimate(math.nan, math.nan, math.nan, 0)


def _short_of(e: Estimate, floor: Estimate, better: str | None) -> bool:
    """Whether a mean is not better than the baseline's in the measure's direction (both measured)."""
    if not e.n or not floor.n or better not in ("lower", "higher"):
        return False
    return not (e.mean < floor.mean if better == "lower" else e.mean > floor.mean)


def _legend(baseline: str) -> str:
    """The line that says what BASELINE_MARK means in a class's tables."""
    return (
        f"{BASELINE_MARK}: not better than {_baseline_words(baseline)}: the method's mean is not better than "
        f"{baseline}'s on that metric and class, in the metric's direction (↓: lower is better, ↑: higher is better)."
    )


def _cost_sections(cost: dict[str, Any] | None) -> list[Section]:
    if not cost:
        return []
    per_pair = cost["forwards_per_map_and_class"]
    text = (
        f"Mean over {cost['samples']} sample(s): {sum(cost['forwards_per_sample'].values()):.0f} forward "
        f"passes and {cost['seconds_per_sample']:.1f} s per sample"
        + (f", {per_pair:.1f} perturbed forwards per map and class" if per_pair is not None else "")
        + " (the maps of the variants and the sanity check included in the seconds)."
    )
    table = (["metric", "forwards per sample"], [[m, f"{v:.1f}"] for m, v in cost["forwards_per_sample"].items()])
    return [("h2", "Cost of the evaluation"), ("p", text), ("table", table)]


def _sanity_sections(steps: list[str], sanity: dict[str, np.ndarray], plot: str | None) -> list[Section]:
    if not plot:
        return []
    rows = [[v, *(f"{x:.3f}" for x in rho)] for v, rho in sanity.items()]
    return [
        ("h2", SANITY_TITLE),
        ("table", (["variant", *steps], rows)),
        ("img", (plot, "Cascading randomisation")),
    ]


# The researchers' manual's table "Why Score-CAM is better than Grad-CAM", row by row: (its row, its claim, the measure
# that answers it, the direction the claim predicts for Score-CAM − Grad-CAM: "better" or "higher").
SEED_CLAIMS = [
    ("Stability", "more stable", "max_sensitivity", "better"),
    ("Stability", "more stable", "noise_spearman", "better"),
    ("Small objects", "better localization (seeds: the smallest objects)", "energy_pointing_game_small", "better"),
    ("Small objects", "better localization (seeds: the smallest objects)", "rank_accuracy_small", "better"),
    ("Multiple instances", "handles well", "instance_share", "better"),
    ("Boundaries", "sharper", "ring_ratio", "better"),
    ("Noise", "cleaner heatmaps", "complexity", "better"),
    ("Noise", "cleaner heatmaps", "sparseness", "better"),
    ("Speed", "slower", "seconds", "higher"),
]


def _verdict(estimate: Estimate, better: str | None, predicted: str) -> str:
    """Whether the paired difference's 95% interval lies on the side the claim predicts (from 5 paired
    samples on; fewer are reported as too few)."""
    if not estimate.n or math.isnan(estimate.low):
        return "not measurable here"
    if estimate.n < MIN_VERDICT_SAMPLES:
        return f"too few samples to tell (n={estimate.n})"
    higher = predicted == "higher" or (predicted == "better" and better == "higher")
    if estimate.low > 0:
        return "holds" if higher else "does not hold: the opposite"
    if estimate.high < 0:
        return "does not hold: the opposite" if higher else "holds"
    return "not shown (the interval spans 0)"


def _claims_sections(
    rows: list[dict[str, Any]], classes: list[str], variants: list[str], methods: dict[str, str]
) -> list[Section]:
    """The researchers' manual's claims for Score-CAM against Grad-CAM, measured per class (the first
    variant of each)."""
    score = next((v for v in variants if methods.get(v) == "scorecam"), None)
    grad = next((v for v in variants if methods.get(v) == "gradcam"), None)
    if not score or not grad:
        return []
    by_name = {m.name: m for m in measures(None)}
    values = _values(rows)
    out: list[Section] = [
        ("h2", "The manual's claims, measured"),
        (
            "p",
            "Each row of the table 'Why Score-CAM is better than Grad-CAM' of the researchers' manual, answered "
            f"on this model by {score} against {grad}: means, the paired difference per sample with its 95% "
            "bootstrap interval, and whether the interval lies on the side the claim predicts.",
        ),
    ]
    for c in classes:
        table = []
        for row, claim, name, predicted in SEED_CLAIMS:
            a, b = values.get((c, score, name), {}), values.get((c, grad, name), {})
            if not a or not b:
                continue
            m = by_name[name]
            diff = paired_difference(a, b)
            means = bootstrap_mean(list(a.values())).text(m.digits), bootstrap_mean(list(b.values())).text(m.digits)
            table.append(
                [
                    row,
                    claim,
                    m.title + _arrow(m),
                    means[1],
                    means[0],
                    diff.text(m.digits),
                    _verdict(diff, m.better, predicted),
                ]
            )
        if table:
            out.append(("p", f"Class {c}:"))
            header = ["the manual's row", "claim", "measure", grad, score, f"{score} − {grad}", "on this model"]
            out.append(("table", (header, table)))
    return out
