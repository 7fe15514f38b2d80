"""A whole run: prepare, explain (this process's share of the samples), finalize."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import NothingExplained, XAIError
from ..precision import float32_math
from .distributed import Ranks, Shard, join_torchrun
from .explain_stage import ExplainStats, explain, write
from .finalize_stage import finalize
from .layout import SAMPLE_DIR, Layout
from .options import RunOptions
from .samples import Explained
from .setup import Setup, prepare

log = logging.getLogger(__name__)


def run(opts: RunOptions, shard: Shard | None = None) -> dict[str, Any] | None:
    """Explain the chosen samples of a split (or the photographs of --images) and write every output;
    returns the manifest.

    Under torchrun each rank explains its shard and rank 0 finalizes after a barrier (the other ranks
    return None). With `shard` (--shard K/N, no torchrun) only that shard is explained and nothing is
    finalized: run --finalize OUTPUT_DIR once every shard is done. A process whose share of the samples
    was not empty and that explained none of them raises NothingExplained (exit code 1), after the
    summaries are written."""
    ranks = join_torchrun(opts.device)
    try:
        if ranks is not None:
            if shard is not None:
                raise XAIError("--shard and torchrun both split the samples: use one of them")
            opts = opts.replace(
                device=ranks.device(opts.device),
                resume=opts.resume or ranks.restarted,
                progress=opts.progress and ranks.rank == 0,
            )
            shard = ranks.shard
        setup = prepare(opts)
        for note in setup.notes:
            log.warning("note: %s", note)
        if ranks is None and shard is None and not opts.resume:
            _drop_other_records(setup.layout, setup.indices)
        indices = shard.take(setup.indices) if shard is not None else setup.indices
        stats = _explain(setup, indices, finalize_if_stopped=ranks is None and shard is None)
        _report_skipped(stats.skipped)
        _report_not_photographs(setup)
        manifest = _finish(setup, stats, len(indices), ranks, shard)
        if indices and stats.explained + stats.resumed == 0:
            raise NothingExplained(stats.skipped)
        return manifest
    finally:
        if ranks is not None:
            ranks.close()


def save(setup: Setup, explained: list[Explained]) -> dict[str, Any] | None:
    """Write the outputs of samples explained already (xai.Explanation.save) into setup's output folder, as
    a run writes them (its earlier records of other samples removed); returns the manifest."""
    _drop_other_records(setup.layout, [ex.index for ex in explained])
    stats = write(setup, explained)
    return _finish(setup, stats, len(explained), None, None)


def _explain(setup: Setup, indices: list[int], finalize_if_stopped: bool) -> ExplainStats:
    """The explain stage in IEEE fp32 (a method's precision may say otherwise); when it is stopped
    (Ctrl-C, SIGTERM), the summaries of what is complete are written first if this process owns them."""
    try:
        with float32_math(tf32=False):
            return explain(setup, indices)
    except KeyboardInterrupt:
        if finalize_if_stopped and any((setup.layout.out / SAMPLE_DIR).glob("sample*.json")):
            finalize(setup.layout.out)
        raise


def _finish(
    setup: Setup, stats: ExplainStats, share: int, ranks: Ranks | None, shard: Shard | None
) -> dict[str, Any] | None:
    """The summaries, by whoever writes them: rank 0 after the barrier, nobody for a --shard (its
    --finalize comes later), this process otherwise. Returns the manifest where it was written."""
    out = setup.layout.out
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
            share,
            out,
            out,
        )
        return None
    if not any((out / SAMPLE_DIR).glob("sample*.json")):
        return None  # nothing was asked of this process, or nothing it was asked could be recorded
    manifest = finalize(out)
    if manifest["samples"]["runs_mixed"]:
        log.warning(
            "note: %s holds samples written with other options or another checkpoint; summary and "
            "gallery show all of them (rerun with --resume to redo them under this run's options)",
            out,
        )
    log.info(
        "wrote %d sample(s) to %s/ (index.html: the explorer, gallery.html, summary.csv, manifest.json)",
        manifest["samples"]["explained"],
        out,
    )
    return manifest


def _drop_other_records(layout: Layout, indices: list[int]) -> None:
    """A fresh single-process run owns its folder's summaries: records of samples it was not asked for
    (an earlier, longer run) are removed, so summary and gallery show this run only. Shards, ranks and
    --resume keep every record (they merge)."""
    wanted = {layout.sample(i).record for i in indices}
    folder = layout.out / SAMPLE_DIR
    stale = [p for p in sorted(folder.glob("sample*.json")) if f"{SAMPLE_DIR}/{p.name}" not in wanted]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d sample record(s) of an earlier run that this run does not redo", len(stale))


def _report_not_photographs(setup: Setup) -> None:
    """What --images named that is not a photograph: one line each (the manifest lists them too)."""
    skipped = setup.photographs.skipped if setup.photographs is not None else []
    if skipped:
        log.warning("skipped %d path(s) of --images that are not photographs:", len(skipped))
        for s in skipped:
            log.warning("  %s", s.line())


def _report_skipped(skipped: list[dict[str, str]]) -> None:
    if skipped:
        log.warning("skipped %d sample(s):", len(skipped))
        for s in skipped:
            log.warning("  %s (%s): %s", s["sample"], s["image"], s["error"])
