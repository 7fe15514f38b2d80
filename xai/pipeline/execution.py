"""Model execution of the explain stage: every engine over a group of samples of one input size, the
maps on the host, the evaluation; a group the model fails on is explained again sample by sample."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..batching import is_out_of_memory, release_cached_memory
from ..errors import OutOfMemory, XAIError, first_line
from ..labels import IGNORE
from ..mapfile import as_stored
from ..methods import Explainer
from ..syncs import to_host
from .samples import Explained, Sample

__all__ = ["Execution", "Outcome", "explain_samples", "run_group"]
log = logging.getLogger(__name__)


@dataclass
class Execution:
    """What explaining needs: the engines by method, the explained class ids, the device, how the maps
    files store maps (every map is rounded to it once), whether raw maps are kept, the evaluator."""

    engines: dict[str, Explainer]
    class_ids: list[int]
    device: torch.device
    map_dtype: str
    save_raw: bool = False
    evaluator: Any = None  # xai.evaluation.evaluate.Evaluator with --evaluate
    keep_results: bool = False  # each sample keeps its engines' results (xai.explain, for Explanation.evaluate)


def explain_samples(samples: list[Sample], execution: Execution) -> list[Explained]:
    """Run every engine on preprocessed samples of one input size, all of them in one call of each method
    whose maps do not depend on the batch (Explainer.batch_invariant: the sweeps then fill their batches
    with masked images of every sample), the others sample by sample; then the evaluation per sample.
    Each call's maps are rounded once to what the maps file stores (--map_dtype, xai.mapfile.as_stored),
    so the figures, summaries, evaluation and npz see the same values. Each sample's seconds per method
    are its share of the call."""
    x = torch.stack([s.image for s in samples]).to(execution.device)
    valid = torch.from_numpy(np.stack([s.letterbox.valid() for s in samples]))
    gt_padded = _ground_truth(samples, valid)
    per_sample: list[dict[str, tuple[Any, float]]] = [{} for _ in samples]
    for method, engine in execution.engines.items():
        n = len(samples)
        calls = [slice(0, n)] if engine.batch_invariant else [slice(i, i + 1) for i in range(n)]
        for part in calls:
            t0 = time.perf_counter()
            gt = None if gt_padded is None else gt_padded[part]
            result = engine.explain(x[part], classes=execution.class_ids, gt=gt, valid=valid[part])
            share = (time.perf_counter() - t0) / (part.stop - part.start)
            result = dataclasses.replace(result, maps=as_stored(result.maps, execution.map_dtype))
            for k, i in enumerate(range(part.start, part.stop)):
                per_sample[i][method] = (result.sample(k), share)
    return [
        _explained(
            s, per_sample[i], x[i : i + 1], None if gt_padded is None else gt_padded[i : i + 1], valid[i], execution
        )
        for i, s in enumerate(samples)
    ]


def _ground_truth(samples: list[Sample], valid: torch.Tensor) -> torch.Tensor | None:
    """The samples' masks at the input (N×H×W, padding IGNORE: no class), or None for photographs without
    masks (--images: every sample of a run has a mask, or none has)."""
    masks = [s.mask for s in samples if s.mask is not None]
    if not masks:
        return None
    if len(masks) < len(samples):
        raise XAIError("samples with and without masks cannot be explained in one call")
    return torch.stack(masks).masked_fill(~valid, IGNORE)


def _host_maps(results: dict[str, tuple[Any, float]], padded_hw: tuple[int, int], save_raw: bool) -> dict[str, Any]:
    """Each method's maps, empty flags and extra maps of one sample on the host (and the raw ones)."""
    maps, empty, extra, raw_extra = {}, {}, {}, {}
    for method, (result, _) in results.items():
        maps[method] = to_host(result.maps[0])
        empty[method] = [bool(e) for e in to_host(result.empty[0])]
        spatial = {k: to_host(v[0]) for k, v in result.extra.items() if tuple(v.shape[-2:]) == padded_hw}
        extra[method] = spatial
        raw_extra.update({f"{method}_{k}": v for k, v in spatial.items()})
        if save_raw:
            raw_extra[f"{method}_raw"] = to_host(result.raw[0]).astype(np.float32)
            for key, value in result.extra.items():
                if key not in spatial:
                    raw_extra[f"{method}_{key}"] = to_host(value[0]).astype(np.float32)
    return {"maps": maps, "empty": empty, "extra": extra, "raw_extra": raw_extra}


def _explained(
    sample: Sample,
    results: dict[str, tuple[Any, float]],
    x: torch.Tensor,
    gt_padded: torch.Tensor | None,
    valid: torch.Tensor,
    execution: Execution,
) -> Explained:
    """One sample's maps on the host (and its evaluation with --evaluate), from its methods' results."""
    first = next(iter(results.values()))[0]
    assert first.prediction is not None
    evaluation = None
    batch_sizes = {m: int(r.stats["batch_size"]) for m, (r, _) in results.items() if "batch_size" in r.stats}
    if execution.evaluator is not None:
        gt = None if gt_padded is None else gt_padded.to(x.device)
        evaluation = execution.evaluator.evaluate(sample.index, x, gt, valid, results)
        if execution.evaluator.batch_size:  # 0: an automatic size that nothing needed yet
            batch_sizes["evaluation"] = execution.evaluator.batch_size
    return Explained(
        index=sample.index,
        name=sample.name,
        letterbox=sample.letterbox,
        rgb=sample.rgb,
        gt=sample.gt,
        gt_input=None if gt_padded is None else gt_padded[0].numpy().astype(np.uint8),
        pred_input=to_host(first.prediction[0]).astype(np.uint8),
        confidence_input=None if first.confidence is None else to_host(first.confidence[0].float()),
        probabilities_input=None if first.probabilities is None else to_host(first.probabilities[0].half()),
        source=sample.source,
        classes=list(execution.class_ids),
        seconds={method: secs for method, (_, secs) in results.items()},
        batch_sizes=batch_sizes,
        evaluation=evaluation,
        results=results if execution.keep_results else None,
        **_host_maps(results, sample.letterbox.padded_hw, execution.save_raw),
    )


@dataclass
class Outcome:
    """A sample of a group: explained, or why not; its share of the model's seconds."""

    sample: Sample
    explained: Explained | None
    failure: str | None
    model_seconds: float


Explain = Callable[[list[Sample], Execution], list[Explained]]


def run_group(
    samples: list[Sample], execution: Execution, explain: Explain, on_out_of_memory: Callable[[int], None]
) -> tuple[list[Outcome], float]:
    """(an outcome per sample, the model's seconds, failed calls included): `explain` on the group; a group
    the model fails on is explained again sample by sample, so that only the sample at fault fails (after
    on_out_of_memory(group size) when it ran out of memory). An XAIError that is fatal is raised."""
    t0 = time.perf_counter()
    failure, out_of_memory, explained = None, False, None
    try:
        explained = explain(samples, execution)
    except XAIError as exc:
        if exc.fatal:
            raise
        failure, out_of_memory = str(exc), isinstance(exc, OutOfMemory)
    except Exception as exc:
        failure, out_of_memory = first_line(exc), is_out_of_memory(exc)
    elapsed = time.perf_counter() - t0
    if explained is not None:
        return [Outcome(s, ex, None, elapsed / len(samples)) for s, ex in zip(samples, explained, strict=True)], elapsed
    if len(samples) == 1:  # outside the except: the failed call's tensors are freed with its traceback
        return [Outcome(samples[0], None, f"the model failed on this sample: {failure}", elapsed)], elapsed
    if out_of_memory:
        release_cached_memory(execution.device)
        on_out_of_memory(len(samples))
    outcomes, seconds = [], elapsed
    for s in samples:
        one, spent = run_group([s], execution, explain, on_out_of_memory)
        outcomes += one
        seconds += spent
    return outcomes, seconds
