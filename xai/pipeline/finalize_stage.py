"""The finalize stage: summary.csv/json, manifest.json, index.html (the explorer, with explorer/data.js) and
gallery.html from samples/*.json alone.

Running it again on the same folder gives the same files, and it needs nothing but that folder:
`--finalize OUTPUT_DIR` merges shards, ranks and resumed sessions after the fact.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import XAIError
from ..io import write_csv, write_json
from ..metrics.segmentation import DICE, IOU, MEAN_PROBABILITY, PREDICTED_PIXELS
from ..run_files import RUN_FILES
from .outputs import ERROR_KIND
from .records import DONE, SKIPPED, SampleRecord, read_records

ERROR_LABEL = "TP / FP / FN"  # the error maps' label for records of earlier releases (no "outputs")
# the per-class numbers of the gallery, those that the summary rows have: IoU and Dice of a split, the
# predicted pixels and their mean probability of photographs without masks (--images)
GALLERY_MEASURES = (IOU, DICE, PREDICTED_PIXELS, MEAN_PROBABILITY)
NO_TRUTH_LEGEND = (
    "These photographs have no mask: the figures show the model's prediction (each class in its colour) "
    "instead of TP/FP/FN."
)


def summary_fields(rows: list[dict[str, Any]]) -> list[str]:
    """Every column the rows have, in the order they first appear: a new metric needs no change here."""
    return list(dict.fromkeys(k for row in rows for k in row))


def write_summaries(out: Path, rows: list[dict[str, Any]]) -> None:
    write_csv(out / RUN_FILES.summary_csv, rows, summary_fields(rows))
    write_json(out / RUN_FILES.summary_json, rows)


def _key(record: SampleRecord) -> str:
    return json.dumps(record.run_key, sort_keys=True)


def _timing(done: list[SampleRecord]) -> dict[str, Any]:
    """Seconds spent, overall and per explain process (host, rank, pid, session), from the records' clocks."""
    workers: dict[tuple, dict[str, Any]] = {}
    for r in done:
        w = r.worker or {}
        ident = (str(w.get("host", "?")), int(w.get("rank", 0)), int(w.get("pid", 0)), float(w.get("session", 0)))
        entry = workers.setdefault(
            ident,
            {
                "host": ident[0],
                "rank": ident[1],
                "pid": ident[2],
                "session": ident[3],
                "device": r.run.get("device"),
                "samples": 0,
                "model_seconds": 0.0,
                "render_seconds": 0.0,
                "first_start": r.started,
                "last_finish": r.finished,
                "batch_sizes": {},
            },
        )
        for method, size in r.batch_sizes.items():  # what ran: automatic sizes and halvings included
            seen = entry["batch_sizes"].setdefault(method, [])
            if size not in seen:
                seen.append(size)
        entry["samples"] += 1
        entry["model_seconds"] += float(r.seconds.get("model", 0.0))
        entry["render_seconds"] += float(r.seconds.get("render", 0.0))
        entry["first_start"] = min(entry["first_start"], r.started)
        entry["last_finish"] = max(entry["last_finish"], r.finished)
    for entry in workers.values():
        entry["wall_seconds"] = entry["last_finish"] - entry["first_start"]
    model = sum(w["model_seconds"] for w in workers.values())
    render = sum(w["render_seconds"] for w in workers.values())
    elapsed = (max(r.finished for r in done) - min(r.started for r in done)) if done else 0.0
    return {
        "elapsed_seconds": elapsed,
        "model_seconds": model,
        "render_seconds": render,
        "seconds_per_sample": model / len(done) if done else None,
        "workers": [workers[k] for k in sorted(workers)],
    }


def _report(out: Path, run: dict[str, Any], done: list[SampleRecord]) -> dict[str, Any] | None:
    """The evaluation report of the records that carry metrics (None without any)."""
    if not any(r.metrics for r in done):
        return None
    from ..evaluation.report import write_report

    evaluation = run.get("evaluation") or {}
    notes = [
        f"model {Path(run['checkpoint']['path']).name} ({run['checkpoint'].get('arch')}/"
        f"{run['checkpoint'].get('encoder')}), device {run.get('device')}",
        *[f"reference '{k}': {v}" for k, v in (evaluation.get("references") or {}).items()],
        *_precision_note(evaluation.get("precision")),
        *_contrast_note((evaluation.get("settings") or {}).get("contrast"), run.get("class_names") or []),
    ]
    settings = {
        "model": Path(run["checkpoint"]["path"]).name,
        "split": run.get("split"),
        "region": run.get("region"),
        **(evaluation.get("settings") or {}),
        "notes": notes,
    }
    return write_report(out, done, settings)


def _outputs(run: dict[str, Any]) -> list[dict[str, Any]]:
    return run.get("outputs") or [
        {"name": ERROR_KIND, "label": ERROR_LABEL},
        *({"name": m, "label": info["label"]} for m, info in run.get("methods", {}).items()),
        {"name": "comparison", "label": "Comparison of methods"},
    ]


def _title(run: dict[str, Any]) -> str:
    method_labels = [info["label"] for info in run.get("methods", {}).values()]
    what = "photographs without masks" if "images" in run else f"{run['split']} split"
    return f"{' vs '.join(method_labels)}: {Path(run['checkpoint']['path']).name}, {what}"


def _explorer_columns(done: list[SampleRecord]) -> list[tuple[str, str, int]]:
    """The explorer table's numbers: the gallery's measures, every other number of the summary rows but
    seconds, then (--evaluate) each variant's main metrics as "variant: metric"."""
    from ..metrics.registry import measures

    present = dict.fromkeys(k for r in done for row in r.rows for k in row)
    first = [(m.name, m.title, m.digits) for m in GALLERY_MEASURES if m.name in present]
    skip = {"sample", "image", "class", *(k for k, _t, _d in first)}
    numeric = {k for r in done for row in r.rows for k, v in row.items() if isinstance(v, int | float)}
    floats = {k for r in done for row in r.rows for k, v in row.items() if isinstance(v, float)}
    rest = [(k, k, 3 if k in floats else 0) for k in present if k in numeric - skip and not k.endswith("seconds")]
    main = {m.name: m for m in measures("main", ground_truth=None)}
    evaluated = dict.fromkeys(
        (row["variant"], row["metric"]) for r in done for row in r.metrics if row["metric"] in main
    )
    metric_columns = [(f"{v}:{m}", f"{v}: {main[m].title}", main[m].digits) for v, m in evaluated]
    return first + rest + metric_columns


def _explorer(out: Path, run: dict[str, Any], done: list[SampleRecord], report: Any) -> None:
    from ..explorer import write_explorer

    columns = _explorer_columns(done)
    samples = []
    for r in done:
        rows = {row["class"]: dict(row) for row in r.rows}
        for m in r.metrics:
            rows.setdefault(m["class"], {})[f"{m['variant']}:{m['metric']}"] = m.get("value")
        file = r.explorer if r.explorer and (out / r.explorer).is_file() else None
        samples.append({"index": r.index, "name": r.name, "file": file, "rows": rows})
    names = run.get("class_names", run.get("classes", []))
    explained = list(dict.fromkeys(row["class"] for r in done for row in r.rows))
    classes = [c for c in names if c in explained] + [c for c in explained if c not in names]
    methods = [(m, info["label"]) for m, info in run.get("methods", {}).items()]
    links = [("Faithfulness report", RUN_FILES.report_html)] if report else []
    write_explorer(
        out,
        samples,
        classes,
        methods,
        columns,
        class_names=names,
        title=_title(run),
        links=links,
        has_truth="images" not in run,
    )


def _gallery(out: Path, run: dict[str, Any], done: list[SampleRecord], report: Any) -> None:
    from ..gallery import write_gallery

    outputs = _outputs(run)
    shown = [m for m in GALLERY_MEASURES if any(m.name in row for r in done for row in r.rows)]
    samples = [
        {
            "id": r.id,
            "name": r.name,
            "figures": r.figures,
            "sample_figures": r.sample_figures,
            "metrics": {row["class"]: {m.name: row.get(m.name) for m in shown} for row in r.rows},
        }
        for r in done
    ]
    title = _title(run)
    links = [("Faithfulness report", RUN_FILES.report_html), (RUN_FILES.metrics_csv, RUN_FILES.metrics_csv)]
    errors = any(o["name"] == ERROR_KIND for o in outputs)
    write_gallery(
        out,
        samples,
        run.get("class_names", run.get("classes", [])),
        title=title,
        kind_labels={o["name"]: o["label"] for o in outputs},
        links=links if report else [],
        measures=[(m.name, m.title, m.digits) for m in shown],
        **({} if errors else {"legend": NO_TRUTH_LEGEND}),
    )


def finalize(out: str | Path) -> dict[str, Any]:
    """Write summary.csv, summary.json, manifest.json, index.html (the explorer) and gallery.html of a run
    folder; returns the manifest."""
    out = Path(out)
    if not out.is_dir():
        raise XAIError(f"output folder not found: {out}")
    records = read_records(out)
    if not records:
        raise XAIError(f"{out}: no sample records (samples/sample*.json): nothing to finalize")
    done = [r for r in records if r.status == DONE]
    skipped = [r for r in records if r.status == SKIPPED]
    keys = Counter(_key(r) for r in records)
    main_key = keys.most_common(1)[0][0]
    run = next(r.run for r in reversed(records) if _key(r) == main_key)
    write_summaries(out, [row for r in done for row in r.rows])
    report = _report(out, run, done)
    _gallery(out, run, done, report)
    _explorer(out, run, done, report)
    manifest = {
        **{k: v for k, v in run.items() if k != "evaluation"},  # the run as it ran (xai.pipeline.setup)
        "samples": {
            "explained": len(done),
            "skipped": [{"sample": r.id, "image": r.name, "error": r.error} for r in skipped],
            "runs_mixed": len(keys) > 1,
        },
        "timing": _timing(done),
        "evaluation": {**(run.get("evaluation") or {}), "report": RUN_FILES.report_html} if report else None,
    }
    write_json(out / RUN_FILES.manifest, manifest)
    return manifest


def _contrast_note(contrast: int | str | None, class_names: list[str]) -> list[str]:
    """The report's line on the score the perturbation metrics measured, where it is a contrast (xai.contrast)."""
    if contrast is None:
        return []
    if contrast == "auto":
        what = "s_c − Σ_k w_k s_k, the probability-weighted scores of the 3 classes most similar to c (Finer-CAM's)"
    else:
        k = int(contrast)
        what = f"s_c − s_{class_names[k] if k < len(class_names) else k}"
    return [
        f"the perturbation metrics measure the contrast score {what} over each class's region (--contrast "
        f"{contrast if contrast == 'auto' else what.rsplit('s_', 1)[1]}), for every map and reference; the "
        "context-dependence matrix the classes' own scores"
    ]


def _precision_note(precision: dict[str, str] | None) -> list[str]:
    """The report's line on what the evaluation's forwards ran in (runs before --eval_precision have none)."""
    if not precision:
        return []
    asked = f"--eval_precision {precision['asked']}: {precision['why']}"
    return [f"the evaluation's forward passes ran in {precision['ran']} ({asked})"]
