"""A whole run: prepare, explain, finalize."""
from __future__ import annotations

import logging
from typing import Any

from .explain_stage import explain
from .finalize_stage import finalize
from .options import RunOptions
from .setup import prepare


log = logging.getLogger(__name__)


def run(opts: RunOptions) -> dict[str, Any]:
    """Explain the chosen samples of a split and write every output; returns the manifest."""
    setup = prepare(opts)
    for note in setup.notes:
        log.warning("note: %s", note)
    try:
        stats = explain(setup)
    except KeyboardInterrupt:
        if any((setup.layout.out / "samples").glob("sample*.json")):
            finalize(setup.layout.out)  # summaries of what is complete
        raise
    manifest = finalize(setup.layout.out)
    if stats.skipped:
        log.warning("skipped %d sample(s):", len(stats.skipped))
        for s in stats.skipped:
            log.warning("  %s (%s): %s", s["sample"], s["image"], s["error"])
    if manifest["samples"]["runs_mixed"]:
        log.warning("note: %s holds samples written with other options or another checkpoint; summary and gallery "
                    "show all of them (rerun with --resume to redo them under this run's options)", setup.layout.out)
    log.info("wrote %d sample(s) to %s/ (index.html, summary.csv, manifest.json)", manifest["samples"]["explained"],
             setup.layout.out)
    return manifest
