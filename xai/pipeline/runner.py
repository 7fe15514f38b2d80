"""A whole run: prepare, explain (this process's share of the samples), finalize."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..errors import XAIError
from ..precision import float32_math
from .distributed import Shard, join_torchrun
from .explain_stage import explain
from .finalize_stage import finalize
from .layout import SAMPLE_DIR
from .options import RunOptions
from .setup import prepare

log = logging.getLogger(__name__)


def run(opts: RunOptions, shard: Shard | None = None) -> dict[str, Any] | None:
    """Explain the chosen samples of a split and write every output; returns the manifest.

    Under torchrun each rank explains its shard and rank 0 finalizes after a barrier (the other ranks
    return None). With `shard` (--shard K/N, no torchrun) only that shard is explained and nothing is
    finalized: run --finalize OUTPUT_DIR once every shard is done."""
    ranks = join_torchrun(opts.device)
    try:
        if ranks is not None:
            if shard is not None:
                raise XAIError("--shard and torchrun both split the samples: use one of them")
            opts = dataclasses.replace(
                opts,
                device=ranks.device(opts.device),
                resume=opts.resume or ranks.restarted,
                progress=opts.progress and ranks.rank == 0,
            )
            shard = ranks.shard
        setup = prepare(opts)
        for note in setup.notes:
            log.warning("note: %s", note)
        if ranks is None and shard is None and not opts.resume:
            _drop_other_records(setup)
        indices = shard.take(setup.indices) if shard is not None else setup.indices
        try:
            with float32_math(tf32=False):  # fp32 is IEEE fp32 unless a method's precision says tf32
                stats = explain(setup, indices)
        except KeyboardInterrupt:
            if ranks is None and shard is None and any((setup.layout.out / "samples").glob("sample*.json")):
                finalize(setup.layout.out)  # summaries of what is complete
            raise
        _report_skipped(stats.skipped)
        if ranks is not None:
            ranks.barrier()
            if ranks.rank != 0:
                log.info("rank %d explained %d sample(s); rank 0 writes the summaries", ranks.rank, stats.explained)
                return None
        elif shard is not None:
            log.info(
                "shard %s: explained %d of its %d sample(s) in %s/; when every shard is done: --finalize %s",
                shard,
                stats.explained,
                len(indices),
                setup.layout.out,
                setup.layout.out,
            )
            return None
        manifest = finalize(setup.layout.out)
        if manifest["samples"]["runs_mixed"]:
            log.warning(
                "note: %s holds samples written with other options or another checkpoint; summary and "
                "gallery show all of them (rerun with --resume to redo them under this run's options)",
                setup.layout.out,
            )
        log.info(
            "wrote %d sample(s) to %s/ (index.html, summary.csv, manifest.json)",
            manifest["samples"]["explained"],
            setup.layout.out,
        )
        return manifest
    finally:
        if ranks is not None:
            ranks.close()


def _drop_other_records(setup: Any) -> None:
    """A fresh single-process run owns its folder's summaries: records of samples it was not asked for
    (an earlier, longer run) are removed, so summary and gallery show this run only. Shards, ranks and
    --resume keep every record (they merge)."""
    wanted = {setup.layout.sample(i).record for i in setup.indices}
    folder = setup.layout.out / SAMPLE_DIR
    stale = [p for p in sorted(folder.glob("sample*.json")) if f"{SAMPLE_DIR}/{p.name}" not in wanted]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d sample record(s) of an earlier run that this run does not redo", len(stale))


def _report_skipped(skipped: list[dict[str, str]]) -> None:
    if skipped:
        log.warning("skipped %d sample(s):", len(skipped))
        for s in skipped:
            log.warning("  %s (%s): %s", s["sample"], s["image"], s["error"])
