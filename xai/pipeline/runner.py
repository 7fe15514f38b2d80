"""A whole run: prepare, explain, finalize."""
from __future__ import annotations

from typing import Any

from .explain_stage import explain
from .finalize_stage import finalize
from .options import RunOptions
from .setup import prepare, say


def run(opts: RunOptions) -> dict[str, Any]:
    """Explain the chosen samples of a split and write every output; returns the manifest."""
    setup = prepare(opts)
    for note in setup.notes:
        say(f"note: {note}")
    try:
        stats = explain(setup)
    except KeyboardInterrupt:
        if any((setup.layout.out / "samples").glob("sample*.json")):
            finalize(setup.layout.out)  # summaries of what is complete
        raise
    manifest = finalize(setup.layout.out)
    if stats.skipped:
        say(f"skipped {len(stats.skipped)} sample(s):")
        for s in stats.skipped:
            say(f"  {s['sample']} ({s['image']}): {s['error']}")
    if manifest["samples"]["runs_mixed"]:
        say(f"note: {setup.layout.out} holds samples written with other options or another checkpoint; "
            "summary and gallery show all of them (rerun with --resume to redo them under this run's options)")
    say(f"wrote {manifest['samples']['explained']} sample(s) to {setup.layout.out}/ (index.html, summary.csv, manifest.json)")
    return manifest
