"""Faithfulness of explanation maps, by perturbing the input: deletion, insertion, ROAD, Average Drop
and Average Increase, for one image, several classes and several maps, sharing forward passes.

For an input x (normalised, 1×3×H×W), the photograph's pixels V (the rest is padding and is never
changed), a class c with region R_c (fixed from the unperturbed prediction) and a map L_c ≥ 0:

    s_c(x') = (1/|R_c|) Σ_{p∈R_c} P_c(x')_p      P: softmax of the logits, or the model's own output
                                                  when its head ends in an activation
    deletion / insertion (Petsiuk et al., BMVC 2018): the pixels of V ordered by L_c, largest first
        (stable: ties in raster order); step i = 0..S changes the first n_i of them in all channels:
        deletion sets them to 0 (the dataset's mean colour), insertion starts from the Gaussian blur of
        x over V (11×11, σ = 5, reflect padding at the image border; a normalised convolution, so that
        padding pixels neither enter nor change: blur(x·1_V)/blur(1_V) on V, x elsewhere) and puts x
        back there.
        AUC = trapezoid of s_c over t_i = i/S. Lower deletion and higher insertion are better.
        linear: n_i = round(i·|V|/S);  area: n_i = round(i/S · min(|V|, 2|R_c|))    (round half up)
    ROAD (Rong et al., ICML 2022): for p in the percentiles, the round(p·|V|/100) most relevant pixels
        (MoRF; the least relevant for LeRF, by the ascending stable order, so that a constant map
        removes the same pixels both ways: gap 0) replaced by noisy linear imputation
        (xai.metrics.imputation); morf = mean over p (lower better), lerf likewise (higher better),
        gap = mean(LeRF − MoRF) (higher better). Each (class, p) draws its own seeded noise field,
        the same for MoRF and LeRF, for every map (common random numbers) and every batch size.
    Average Drop / Increase (Chattopadhay et al., 2018): Y = s_c(x), O = s_c(x ⊙ L̂_c) with L̂_c the
        map min-max scaled over V (a constant map scales to 0) and padding multiplied by 1:
        drop = max(0, Y − O)/Y · 100, increase = 100 · 1[O > Y·(1 + 10⁻⁶)]: a difference below float32's
        resolution is a tie (the same O can come out a few ulps above or below Y at another batch size).

An empty region R_c gives NaN with the reason "class absent from its region".

With a contrast (xai.contrast: an output id k, or "auto"), every score above is the contrast score instead,

    s'_c(x') = (1/|R_c|) Σ_{p∈R_c} (P_c(x')_p − Σ_k M_ck P_k(x')_p)

with M the subtracted classes' weights of x (1 at k for contrast=k; Finer-CAM's weights for "auto"), fixed
from the unperturbed forward: what a contrast map explains is measured on the same score. Average Drop and
Increase need Y > 0 (a contrast score can be negative: NaN with the reason).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..batching import Batches
from ..contrast import Contrast, auto_weights, class_weights, contrast_scores
from ..errors import XAIError, option
from ..layers import model_device, preserved_state
from ..modeling import ScoredModel
from ..precision import PRECISIONS, autocast, float32_math, resolve_precision
from ..syncs import to_host
from ..targets import RegionScore, check_classes
from .imputation import noisy_linear_impute

__all__ = [
    "ABSENT",
    "NOT_POSITIVE",
    "SCHEDULES",
    "ZERO_SCORE",
    "CurveResult",
    "DropIncreaseResult",
    "Faithfulness",
    "RoadResult",
    "average_drop_increase",
    "deletion",
    "gaussian_blur",
    "insertion",
    "pixel_counts",
    "road",
]

SCHEDULES = ("linear", "area")
ABSENT = "class absent from its region"
ZERO_SCORE = "the class's score on the unperturbed image is 0"
NOT_POSITIVE = "the score on the unperturbed image is not positive"
TIE = 1e-6  # relative: O within float32 resolution of Y is not an increase
_RoadJob = tuple[int, int, int]  # (rank map, n, noise seed)
_RoadPlan = dict[tuple[str, int], list[list[int | None]]]  # (name, class): MoRF and LeRF rows of job indices

CURVE_STEPS = 50  # S, the steps of the deletion and insertion curves unless told otherwise (--eval_steps)


@dataclass
class CurveResult:
    """Deletion or insertion of one map and class: auc; curve = (t_i, s_c) with S+1 points; pixels =
    n_i, the pixels changed at step i. NaN and None where `reason` says why."""

    auc: float
    curve: tuple[torch.Tensor, torch.Tensor] | None
    pixels: torch.Tensor | None
    schedule: str
    reason: str | None = None


@dataclass
class RoadResult:
    """ROAD of one map and class: the means over the percentiles and the curves (s_c per percentile)."""

    morf: float
    lerf: float
    gap: float
    percentiles: tuple[int, ...]
    morf_curve: torch.Tensor | None
    lerf_curve: torch.Tensor | None
    reason: str | None = None


@dataclass
class DropIncreaseResult:
    """Average Drop (%) and Average Increase (0 or 100) of one map and class, with Y and O."""

    drop: float
    increase: float
    y: float
    o: float
    reason: str | None = None


def gaussian_blur(
    x: torch.Tensor, kernel: int = 11, sigma: float = 5.0, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Each channel of N×C×H×W convolved with g⊗g, g_k ∝ exp(−k²/2σ²) for |k| ≤ (kernel−1)/2, Σg = 1,
    reflect padding at the image border. With valid (H×W bool), a normalised convolution over it:
    blur(x·1_V) / blur(1_V) on V (pixels outside V carry no weight), x outside V."""
    if valid is not None:
        v = valid.to(x.device, torch.float32).expand(1, 1, *x.shape[-2:])
        num = gaussian_blur(x.float() * v, kernel, sigma)
        den = gaussian_blur(v, kernel, sigma)
        return torch.where(valid.to(x.device).bool(), num / den.clamp_min(torch.finfo(torch.float32).tiny), x.float())
    if kernel < 1 or kernel % 2 == 0 or sigma <= 0:
        raise XAIError(f"the blur needs an odd kernel size and σ > 0, got {kernel} and {sigma}")
    half = kernel // 2
    if half >= min(x.shape[-2:]):
        raise XAIError(f"an image of {tuple(x.shape[-2:])} pixels is too small for a {kernel}×{kernel} blur")
    k = torch.arange(-half, half + 1, device=x.device, dtype=torch.float32)
    g = torch.exp(-(k**2) / (2 * sigma**2))
    g = g / g.sum()
    N, C, H, W = x.shape
    t = F.pad(x.float().reshape(N * C, 1, H, W), (half, half, half, half), mode="reflect")
    t = F.conv2d(t, g.view(1, 1, 1, kernel))
    return F.conv2d(t, g.view(1, 1, kernel, 1)).view(N, C, H, W)


def _round_half_up(num: int, den: int) -> int:
    return (2 * num + den) // (2 * den)


def pixel_counts(schedule: str, steps: int, n_valid: int, area: int) -> list[int]:
    """n_0..n_S: linear round(i·|V|/S); area round(i·min(|V|, 2|R_c|)/S) (round half up)."""
    if schedule not in SCHEDULES:
        raise XAIError(f"unknown schedule '{schedule}': choose one of {', '.join(SCHEDULES)}")
    if int(steps) < 1:
        raise XAIError(f"steps must be at least 1, got {steps}")
    total = n_valid if schedule == "linear" else min(n_valid, 2 * area)
    return [_round_half_up(i * total, steps) for i in range(steps + 1)]


def _ranks(values: torch.Tensor, valid: torch.Tensor, descending: bool, n_valid: int) -> torch.Tensor:
    """H×W int32: each pixel of V's position in the stable order of its values; |V| (n_valid) on the
    other pixels. Pixels off V sort after every pixel of V (no boolean indexing: the host never looks)."""
    flat, keep = values.flatten().float(), valid.flatten()
    last = torch.tensor(-math.inf if descending else math.inf, device=flat.device)
    order = torch.argsort(torch.where(keep, flat, last), descending=descending, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return torch.where(keep, rank, torch.full_like(rank, n_valid)).view(values.shape).int()


def _noise_seed(seed: int, cls: int, percentile: int) -> int:
    return int(np.random.SeedSequence([seed, cls, percentile]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _image_and_valid(x: torch.Tensor, valid: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """x as 1×C×H×W float32 and valid as H×W bool (V), on the device; anything but one finite image, or a
    valid mask of another size, is refused."""
    x = torch.as_tensor(x)
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1:
        raise XAIError(f"faithfulness metrics take one image (1×C×H×W), got shape {tuple(x.shape)}")
    if not to_host(torch.isfinite(x).all()):
        raise XAIError("the input holds NaN or infinite values")
    x = x.detach().to(device, torch.float32)
    size = tuple(x.shape[-2:])
    valid = torch.as_tensor(valid, device=device).bool()
    checked = valid[0] if valid.dim() == 3 and valid.shape[0] == 1 else valid
    if tuple(checked.shape) != size:
        raise XAIError(f"valid mask of shape {tuple(valid.shape)} does not match the image's {size}")
    return x, checked


def _classes_and_regions(
    classes: Sequence[int], regions: torch.Tensor, valid: torch.Tensor
) -> tuple[list[int], torch.Tensor]:
    """The classes as ints and their regions C'×H×W bool restricted to V (R_c); no class, or regions of
    another number or size, are refused."""
    classes = [int(c) for c in classes]
    if not classes:
        raise XAIError("faithfulness metrics need at least one class")
    regions = torch.as_tensor(regions, device=valid.device).bool()
    regions = regions[0] if regions.dim() == 4 and regions.shape[0] == 1 else regions
    size = tuple(valid.shape)
    if tuple(regions.shape) != (len(classes), *size):
        raise XAIError(f"regions of shape {tuple(regions.shape)} do not match {len(classes)} classes of {size} pixels")
    return classes, regions & valid


class Faithfulness:
    """The perturbation metrics of one image: `deletion`, `insertion`, `road`, `average_drop_increase`,
    each taking maps = {name: C'×H×W tensor aligned with `classes`} and returning {name: [result per
    class]}. regions: C'×H×W bool (R_c, restricted to valid); valid: H×W bool (V).

    ROAD's imputations are solved by `imputation` (xai.metrics.imputation's solver: auto = an exact
    sparse solve on the CPU, conjugate gradients without host looks elsewhere). Every forward scores all
    classes; perturbed inputs are built and run chunk by chunk, batch_size at
    a time, under inference mode with the model in eval mode (training flags restored). Scores stay on
    the device until a metric's last chunk and come to the host in one transfer (xai.syncs): a metric
    call looks at the device a fixed number of times, however many chunks it runs. `forwards`
    counts images run, per metric; for M maps of C' classes with non-empty regions and S steps:
        unperturbed: 1 (x, at construction); shared: 1 per image among the blurred start and the
            all-deleted image, the first time a metric needs it (shared by every map and class)
        deletion_<schedule>, insertion_<schedule>: per map and class, the distinct n_i with
            0 < n_i < |V| (n_i = 0 and |V| are x, the blurred or the all-deleted image):
            linear S−1 (for |V| ≥ S); area S when 2|R_c| < |V|, else S−1 (fewer when min(|V|, 2|R_c|) < S),
            less the n_i an earlier call already ran for the same kind, map (name and values) and class:
            after the linear schedule, the area schedule of a class with 2|R_c| ≥ |V| costs nothing;
            maps equal pixel for pixel (every class of a class-agnostic method, equal variants) share
            their images: a step's forward scores all their classes at once
        road: 2·P per map and class for P percentiles (a percentile whose count rounds to 0 is x)
        average_drop_increase: 1 per map and class (0 for a map constant over V: the all-deleted image;
            one for equal maps)
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        classes: Sequence[int],
        regions: torch.Tensor,
        valid: torch.Tensor,
        *,
        batch_size: int | None = None,
        outputs_probabilities: bool | None = None,
        blur_kernel: int = 11,
        blur_sigma: float = 5.0,
        batches: Batches | None = None,
        sync_free: bool | None = None,
        compile: bool = False,
        cudnn_benchmark: bool = False,
        precision: str = "fp32",
        imputation: str = "auto",
        contrast: int | str | None = None,
    ):
        if batch_size is not None and int(batch_size) < 1:
            raise XAIError(f"{option('batch_size')} must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise XAIError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
        self.model = model
        self.device = model_device(model)
        self.precision = resolve_precision(precision, self.device)  # what the forwards run in
        self.x, self.valid = _image_and_valid(x, valid, self.device)
        self.classes, self.regions = _classes_and_regions(classes, regions, self.valid)
        counts = to_host(torch.cat([self.valid.sum().view(1), self.regions.flatten(1).sum(1)]))  # one transfer
        self.n_valid, self.area = int(counts[0]), [int(a) for a in counts[1:]]
        if self.n_valid == 0:
            raise XAIError("the valid mask holds no pixel of the photograph")
        self.scored = ScoredModel(model, "prob", compile=compile, cudnn_benchmark=cudnn_benchmark)
        if outputs_probabilities is not None:
            self.scored.probabilities = bool(outputs_probabilities)
        self.score = RegionScore("prob", "mean")
        self.batches = (
            batches if batches is not None else Batches(batch_size, "evaluation", "perturbed images", self.device)
        )
        self.blur_kernel, self.blur_sigma = int(blur_kernel), float(blur_sigma)
        # ROAD's imputations without a host look per chunk (default: off the CPU, where looks cost a wait)
        self.sync_free = self.device.type != "cpu" if sync_free is None else bool(sync_free)
        self.imputation = imputation  # ROAD's solver (xai.metrics.imputation): auto, cg or direct
        self.forwards: dict[str, int] = {}
        self.contrast = None if contrast is None else self._contrast_weights(contrast)
        self._shared: dict[str, np.ndarray] = {}
        self._points: dict[tuple[str, str], tuple[torch.Tensor, list[dict[int, float]]]] = {}
        self._projection: torch.Tensor | None = None
        self._twins: dict[tuple[str, int], tuple[str, int]] = {}
        self.y = self._shared_score("x")

    @property
    def batch_size(self) -> int:
        """Perturbed images per forward pass (lowered for the rest of the run after an out-of-memory error)."""
        return self.batches.size

    # ---- forwards ---------------------------------------------------------------------------------

    def _score(self, images: torch.Tensor, batched: bool = True) -> torch.Tensor:
        """B×C' region means s_c of a batch of inputs (float64: sums of many pixels); the forward pass at
        the evaluation's precision, the inputs built and the scores summed in IEEE fp32 and float64."""
        with autocast(self.precision, self.device):
            _, P = self.scored.forward(images, batched=batched)
        check_classes(self.classes, P.shape[1])
        if self.contrast is not None:
            c = self.contrast
            return contrast_scores(self.score, P, self.regions, self.classes, c, image=0, dtype=torch.float64)
        return self.score(P, self.regions, self.classes, dtype=torch.float64)

    def _contrast_weights(self, contrast: int | str) -> Contrast:
        """M (1×C'×C) of the contrast score, from one forward of x (counted as "contrast")."""
        state = preserved_state(self.model)
        with float32_math(tf32=False), state, torch.inference_mode(), autocast(self.precision, self.device):
            _, P = self.scored.forward(self.x, batched=False)
        self.forwards["contrast"] = 1
        num_outputs = P.shape[1]
        check_classes(self.classes, num_outputs)
        if contrast == "auto":
            return auto_weights(P.float(), self.regions[None], self.classes)
        k = contrast if isinstance(contrast, int) and not isinstance(contrast, bool) else -1
        if not 0 <= k < num_outputs or k in self.classes:
            raise XAIError(
                f"the contrast of the evaluation is an output id 0..{num_outputs - 1} other than the explained "
                f"classes, or 'auto'; got {contrast!r}"
            )
        return class_weights(k, 1, len(self.classes), num_outputs, self.device)

    def _scores(self, metric: str, count: int, build: Callable[[int, int], torch.Tensor]) -> np.ndarray:
        """count×C' scores (float64, on the host) of the inputs build(a, b) returns for [a, b), in chunks
        that halve on out-of-memory (xai.batching); the scores stay on the device until the last chunk
        is done, then come to the host in one transfer."""
        chunks: list[torch.Tensor] = []
        with float32_math(tf32=False), preserved_state(self.model), torch.inference_mode():
            self.batches.fit(("evaluation", *self.x.shape[1:]), self._probe)
            self.batches.for_each(count, lambda a, b: chunks.append(self._score(build(a, b))))
        self.forwards[metric] = self.forwards.get(metric, 0) + count
        return to_host(torch.cat(chunks)) if chunks else np.zeros((0, len(self.classes)))

    def _probe(self, b: int) -> None:
        """A forward of b copies of x (an automatic batch size is measured with it), uncompiled as the
        methods measure theirs: a compilation under the measuring dispatch mode would be measured too."""
        self._score(self.x.expand(b, -1, -1, -1).clone(), batched=False)

    def shared_image(self, name: str) -> torch.Tensor:
        """1×3×H×W: "x"; "blurred", insertion's start (blur on V, x on padding); "deleted" (V set to 0)."""
        if name == "x":
            return self.x
        if name == "blurred":
            return gaussian_blur(self.x, self.blur_kernel, self.blur_sigma, self.valid)
        if name == "deleted":
            return torch.where(self.valid, torch.zeros_like(self.x), self.x)
        raise XAIError(f"unknown shared image '{name}'")

    def _shared_score(self, name: str) -> np.ndarray:
        if name not in self._shared:
            image = self.shared_image(name)
            self._shared[name] = self._scores("unperturbed" if name == "x" else "shared", 1, lambda a, b: image)[0]
        return self._shared[name]

    def _maps(self, maps: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for name, m in maps.items():
            t = torch.as_tensor(m).detach().to(self.device, torch.float32)
            t = t[0] if t.dim() == 4 and t.shape[0] == 1 else t
            if tuple(t.shape) != (len(self.classes), *self.x.shape[-2:]):
                raise XAIError(
                    f"maps '{name}' of shape {tuple(t.shape)} do not match {len(self.classes)} classes "
                    f"of {tuple(self.x.shape[-2:])} pixels"
                )
            out[name] = t
        present = [(name, j) for name, j, _ in self._present(out)]
        stacked = torch.stack([out[name][j] for name, j in present]) if present else None
        if out:  # one transfer: whether each map is finite, and a seeded projection of each present map
            finite = torch.stack([torch.isfinite(t).all() for t in out.values()]).double()
            looked = to_host(torch.cat([finite, self._project(stacked)]))
            for name, ok in zip(out, looked[: len(out)], strict=True):
                if not ok:
                    raise XAIError(f"maps '{name}' hold NaN or infinite values")
            self._twins = _identical(present, stacked, looked[len(out) :])
        return out

    def _project(self, stacked: torch.Tensor | None) -> torch.Tensor:
        """Σ_p L(p)·w(p) of each map, w a seeded uniform field in float64 (equal maps project equally)."""
        if stacked is None:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        if self._projection is None:
            g = torch.Generator().manual_seed(0)
            self._projection = torch.rand(self.x.shape[-2:], generator=g, dtype=torch.float64).to(self.device)
        return (stacked.double() * self._projection).sum((-2, -1))

    def _present(self, maps: dict[str, torch.Tensor]) -> Iterable[tuple[str, int, torch.Tensor]]:
        return ((name, j, m[j]) for name, m in maps.items() for j in range(len(self.classes)) if self.area[j] > 0)

    # ---- the metrics ------------------------------------------------------------------------------

    def deletion(
        self, maps: Mapping[str, torch.Tensor], steps: int = CURVE_STEPS, schedule: str = "linear"
    ) -> dict[str, list[CurveResult]]:
        """Deletion curves and AUCs (lower is better) of every map and class."""
        return self._curves("deletion", maps, steps, schedule)

    def insertion(
        self, maps: Mapping[str, torch.Tensor], steps: int = CURVE_STEPS, schedule: str = "linear"
    ) -> dict[str, list[CurveResult]]:
        """Insertion curves and AUCs (higher is better) of every map and class."""
        return self._curves("insertion", maps, steps, schedule)

    def _curves(
        self, kind: str, maps: Mapping[str, torch.Tensor], steps: int, schedule: str
    ) -> dict[str, list[CurveResult]]:
        maps = self._maps(maps)
        N = self.n_valid
        pixel_counts(schedule, steps, N, 0)  # refuses a bad schedule or step count even when no class is present
        first, last = ("x", "deleted") if kind == "deletion" else ("blurred", "x")
        start = self.shared_image(first)
        target = torch.zeros_like(self.x) if kind == "deletion" else self.x
        ranks: dict[tuple[str, int], torch.Tensor] = {}  # by the first of equal maps (_identical)
        jobs: dict[tuple[tuple[str, int], int], int] = {}  # (rank map, n) -> its row of scores
        wanted: list[tuple[int, dict[int, float], int, int]] = []  # (row, points of a curve, class, n)
        plan: dict[tuple[str, int], tuple[list[int], dict[int, float]]] = {}
        measured = self._points_of(kind, maps)
        for name, j, m in self._present(maps):
            counts = pixel_counts(schedule, steps, N, self.area[j])
            points = measured[name][j]
            twin = self._twins[(name, j)]
            if twin not in ranks:
                ranks[twin] = _ranks(m, self.valid, True, N)
            for n in sorted(set(counts) - set(points) - {0, N}):
                wanted.append((jobs.setdefault((twin, n), len(jobs)), points, j, n))
            plan[(name, j)] = (counts, points)
        order = list(jobs)

        def build(a: int, b: int) -> torch.Tensor:
            masks = torch.stack([ranks[twin] < n for twin, n in order[a:b]]).unsqueeze(1)
            return torch.where(masks, target, start)

        scores = self._scores(f"{kind}_{schedule}", len(order), build)
        for row, points, j, n in wanted:
            points[n] = float(scores[row, j])
        t = np.arange(steps + 1, dtype=np.float64) / steps
        ends = {0: self._shared_score(first), N: self._shared_score(last)}
        out: dict[str, list[CurveResult]] = {}
        for name in maps:
            out[name] = []
            for j in range(len(self.classes)):
                if (name, j) not in plan:
                    out[name].append(CurveResult(math.nan, None, None, schedule, ABSENT))
                    continue
                counts, points = plan[(name, j)]
                s = np.array([float(ends[n][j]) if n in ends else points[n] for n in counts])
                out[name].append(_curve(s, t, counts, schedule))
        return out

    def context_deletion(
        self, maps: Mapping[str, torch.Tensor], steps: int = CURVE_STEPS
    ) -> dict[str, list[CurveResult]]:
        """Deletion restricted to the class's surroundings: the pixels of V ∖ R_c ordered by L_c, the first
        n_i = round(i·|V ∖ R_c|/S) set to 0, R_c never changed; AUC of s_c (how much the class's score
        leans on what is around it, in the map's order: lower is a better ordering)."""
        maps = self._maps(maps)
        pixel_counts("linear", steps, 1, 0)
        jobs: list[tuple[torch.Tensor, int]] = []
        plan: dict[tuple[str, int], tuple[list[int], int]] = {}
        for name, j, m in self._present(maps):
            total = self.n_valid - self.area[j]  # |V ∖ R_c|: R_c lies inside V
            if total == 0:
                continue
            ranks = _ranks(m, self.valid & ~self.regions[j], True, total)
            counts = pixel_counts("linear", steps, total, 0)
            plan[(name, j)] = (counts, len(jobs))
            jobs += [(ranks, n) for n in counts[1:]]

        def build(a: int, b: int) -> torch.Tensor:
            masks = torch.stack([ranks < n for ranks, n in jobs[a:b]]).unsqueeze(1)
            return torch.where(masks, torch.zeros_like(self.x), self.x)

        scores = self._scores("context_deletion", len(jobs), build)
        t = np.arange(steps + 1, dtype=np.float64) / steps
        out: dict[str, list[CurveResult]] = {}
        for name in maps:
            out[name] = []
            for j in range(len(self.classes)):
                if (name, j) not in plan:
                    reason = ABSENT if self.area[j] == 0 else "no pixel of the photograph outside the region"
                    out[name].append(CurveResult(math.nan, None, None, "linear", reason))
                    continue
                counts, first = plan[(name, j)]
                s = np.concatenate([self.y[j : j + 1], scores[first : first + len(counts) - 1, j]])
                out[name].append(_curve(s, t, counts, "linear"))
        return out

    def _points_of(self, kind: str, maps: dict[str, torch.Tensor]) -> dict[str, list[dict[int, float]]]:
        """Per map name and class, {n: s_c with the first n pixels changed} measured so far for this kind;
        emptied for a name whose maps have changed since (one transfer compares every name)."""
        known = [name for name in maps if (kind, name) in self._points]
        same: Any = (
            to_host(torch.stack([(self._points[(kind, n)][0] == maps[n]).all() for n in known])) if known else []
        )
        unchanged = {n for n, ok in zip(known, same, strict=True) if ok}
        for name, m in maps.items():
            if name not in unchanged:
                self._points[(kind, name)] = (m.clone(), [{} for _ in self.classes])
        return {name: self._points[(kind, name)][1] for name in maps}

    def road(
        self,
        maps: Mapping[str, torch.Tensor],
        percentiles: Iterable[int] = range(10, 100, 10),
        noise: float = 0.01,
        seed: int = 0,
    ) -> dict[str, list[RoadResult]]:
        """ROAD MoRF and LeRF curves over the percentiles, their means and the gap (LeRF − MoRF)."""
        maps = self._maps(maps)
        ps = tuple(int(p) for p in percentiles)
        if not ps or any(not 0 < p < 100 for p in ps):
            raise XAIError(f"ROAD percentiles must lie strictly between 0 and 100, got {list(ps)}")
        if noise < 0 or seed < 0:
            raise XAIError(f"ROAD needs noise ≥ 0 and seed ≥ 0, got {noise} and {seed}")
        ranks, jobs, plan = self._road_jobs(maps, ps, seed)
        scores = self._road_scores(ranks, jobs, noise)
        return self._road_results(maps, plan, scores, ps)

    def _road_jobs(
        self, maps: dict[str, torch.Tensor], ps: tuple[int, ...], seed: int
    ) -> tuple[list[torch.Tensor], list[_RoadJob], _RoadPlan]:
        """The imputations ROAD needs: per present map and class, the rank maps in MoRF (descending) and
        LeRF (ascending) order; a job (rank map, n, noise seed) per percentile whose count n =
        round(p·|V|/100) is above 0; and the plan: per (name, class) the MoRF and LeRF rows of each
        percentile's job (None where n = 0: the score of x)."""
        N = self.n_valid
        counts = [_round_half_up(p * N, 100) for p in ps]
        ranks: list[torch.Tensor] = []
        jobs: list[_RoadJob] = []
        plan: _RoadPlan = {}
        for name, j, m in self._present(maps):
            rows: list[list[int | None]] = []
            for descending in (True, False):
                ranks.append(_ranks(m, self.valid, descending, N))
                rows.append([])
                for p, n in zip(ps, counts, strict=True):
                    rows[-1].append(len(jobs) if n > 0 else None)
                    if n > 0:
                        jobs.append((len(ranks) - 1, n, _noise_seed(seed, self.classes[j], p)))
            plan[(name, j)] = rows
        return ranks, jobs, plan

    def _road_scores(self, ranks: list[torch.Tensor], jobs: list[_RoadJob], noise: float) -> np.ndarray:
        """len(jobs)×C' scores of the imputed images (x with each job's n first pixels imputed, its own
        seeded noise). Sync-free, the imputations run without host looks and record whether they
        converged; one look at the end redoes the few that did not with the checking solver."""
        converged = torch.ones(len(jobs), dtype=torch.bool, device=self.device)

        def build(a: int, b: int, checked: bool = False) -> torch.Tensor:
            masks = torch.stack([ranks[r] < n for r, n, _ in jobs[a:b]])
            return self.impute(masks, [s for _, _, s in jobs[a:b]], noise, converged[a:b], checked)

        scores = self._scores("road", len(jobs), build)
        if self.sync_free and jobs:  # one look for every imputation: redo the few that did not converge
            for k in (int(i) for i in np.flatnonzero(~to_host(converged))):
                scores[k] = self._scores("road", 1, functools.partial(_redo, build, k))[0]
        return scores

    def impute(
        self, masks: torch.Tensor, seeds: list[int], noise: float, converged: torch.Tensor, checked: bool = False
    ) -> torch.Tensor:
        """M×3×H×W: x with each mask's pixels (M×H×W bool) imputed by noisy linear imputation, each with its
        own seeded noise, by this object's solver (`imputation`). Sync-free (off the CPU) and not `checked`,
        no host look: whether each converged is written into `converged` (M bool) for one look later."""
        blind = self.sync_free and not checked
        return noisy_linear_impute(
            self.x,
            masks,
            self.valid,
            noise=noise,
            generator=[torch.Generator(self.device).manual_seed(s) for s in seeds],
            sync_free=blind,
            solver=self.imputation,
            converged=converged if blind else None,
        )

    def _road_results(
        self, maps: dict[str, torch.Tensor], plan: _RoadPlan, scores: np.ndarray, ps: tuple[int, ...]
    ) -> dict[str, list[RoadResult]]:
        """{name: [RoadResult per class]}: the MoRF and LeRF curves from the plan's scores, their means
        and the gap; NaN with the reason for a class absent from its region."""
        out: dict[str, list[RoadResult]] = {}
        for name in maps:
            out[name] = []
            for j in range(len(self.classes)):
                if (name, j) not in plan:
                    out[name].append(RoadResult(math.nan, math.nan, math.nan, ps, None, None, ABSENT))
                    continue
                morf, lerf = (
                    np.array([self.y[j] if k is None else scores[k, j] for k in row], dtype=np.float64)
                    for row in plan[(name, j)]
                )
                out[name].append(
                    RoadResult(
                        float(morf.mean()),
                        float(lerf.mean()),
                        float((lerf - morf).mean()),
                        ps,
                        torch.from_numpy(morf),
                        torch.from_numpy(lerf),
                    )
                )
        return out

    def average_drop_increase(self, maps: Mapping[str, torch.Tensor]) -> dict[str, list[DropIncreaseResult]]:
        """Average Drop and Average Increase of every map and class."""
        maps = self._maps(maps)
        inf = torch.tensor(math.inf, device=self.device)
        bounds = {  # per map name: C'×1×1 min and max over V
            name: (
                torch.where(self.valid, m, inf).amin((-2, -1), keepdim=True),
                torch.where(self.valid, m, -inf).amax((-2, -1), keepdim=True),
            )
            for name, m in maps.items()
        }
        flags: Any = to_host(torch.stack([(hi > lo).flatten() for lo, hi in bounds.values()])) if maps else []
        varies = dict(zip(bounds, flags, strict=True))  # one transfer for every map
        scored = [(name, j) for name, j, _ in self._present(maps) if self.y[j] > 0 and varies[name][j]]
        jobs = list(dict.fromkeys(self._twins[key] for key in scored))  # equal maps scale x equally

        def scaled_input(name: str, j: int) -> torch.Tensor:
            m, (lo, hi) = maps[name][j], bounds[name]
            return torch.where(self.valid, self.x[0] * (m - lo[j]) / (hi[j] - lo[j]), self.x[0])

        scores = self._scores(
            "average_drop_increase", len(jobs), lambda a, b: torch.stack([scaled_input(*job) for job in jobs[a:b]])
        )
        rows = {job: k for k, job in enumerate(jobs)}
        index = {key: rows[self._twins[key]] for key in scored}
        out: dict[str, list[DropIncreaseResult]] = {}
        for name in maps:
            out[name] = []
            for j in range(len(self.classes)):
                y = float(self.y[j]) if self.area[j] > 0 else math.nan
                if not y > 0:
                    why = ABSENT if self.area[j] == 0 else ZERO_SCORE if self.contrast is None else NOT_POSITIVE
                    out[name].append(DropIncreaseResult(math.nan, math.nan, y, math.nan, why))
                    continue
                if (name, j) in index:
                    o = float(scores[index[(name, j)], j])
                else:  # a constant map scales to 0: the all-deleted image
                    o = float(self._shared_score("deleted")[j])
                out[name].append(DropIncreaseResult(max(0.0, y - o) / y * 100, 100.0 * (o > y * (1 + TIE)), y, o))
        return out


def _identical(
    present: list[tuple[str, int]], stacked: torch.Tensor | None, projections: np.ndarray
) -> dict[tuple[str, int], tuple[str, int]]:
    """For each (name, class) of a present map, the first (name, class) whose map equals it pixel for pixel
    (itself for most; every class of a class-agnostic method points to its first): equal maps perturb the
    image identically, so one forward serves them all. Only maps whose projections coincide are compared,
    exactly, in one more transfer (none when no two projections coincide)."""
    first: dict[float, int] = {}
    pairs = [(k, f) for k, f in ((k, first.setdefault(float(v), k)) for k, v in enumerate(projections)) if f != k]
    if not pairs or stacked is None:
        return {key: key for key in present}
    equal = to_host(torch.stack([(stacked[k] == stacked[f]).all() for k, f in pairs]))
    twin = {k: f for (k, f), same in zip(pairs, equal, strict=True) if same}
    return {key: present[twin.get(k, k)] for k, key in enumerate(present)}


def _redo(build: Callable[..., torch.Tensor], k: int, _a: int, _b: int) -> torch.Tensor:
    """The input of job k alone, built with the checked (host-looking) solver."""
    return build(k, k + 1, checked=True)


def _curve(s: np.ndarray, t: np.ndarray, counts: list[int], schedule: str) -> CurveResult:
    """A deletion/insertion result from its scores s_i at t_i (host arrays): AUC by the trapezoid rule."""
    auc = float(np.trapezoid(s, t))
    return CurveResult(auc, (torch.from_numpy(t.copy()), torch.from_numpy(s)), torch.tensor(counts), schedule)


def _on_one_image(name: str, own: tuple[str, ...]) -> Callable[..., Any]:
    """A one-call form of a Faithfulness metric: f(model, x, maps, classes, regions, valid, **keywords),
    the metric's own keywords (`own`) for the metric, the others for Faithfulness."""

    def metric(
        model: nn.Module,
        x: torch.Tensor,
        maps: Mapping[str, torch.Tensor],
        classes: Sequence[int],
        regions: torch.Tensor,
        valid: torch.Tensor,
        **keywords: Any,
    ) -> Any:
        mine = {k: keywords.pop(k) for k in own if k in keywords}
        return getattr(Faithfulness(model, x, classes, regions, valid, **keywords), name)(maps, **mine)

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = f"Faithfulness(model, x, classes, regions, valid, **options).{name}(maps, {', '.join(own)})"
    return metric


deletion = _on_one_image("deletion", ("steps", "schedule"))
insertion = _on_one_image("insertion", ("steps", "schedule"))
road = _on_one_image("road", ("percentiles", "noise", "seed"))
average_drop_increase = _on_one_image("average_drop_increase", ())
