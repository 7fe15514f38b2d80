"""The explainer: the one explain path every method shares, whatever its family.

For an input x (N×3×H×W, normalised), the photograph's pixels V (`valid`; the rest is padding), the
model's per-pixel class scores P(x) (xai.modeling.ScoredModel: probabilities or logits), the region R_c
of each explained class (xai.targets: the prediction's pixels of c by default, restricted to V) and its
region score s_c = Σ_{p∈R_c} P_c (xai.targets.RegionScore), a method computes a raw attribution A_c
(N×C'×H×W, its `attribute`), and every method ends alike:

    map_c = minmax_V(positive(A_c))        positive: ReLU (a method may take |·|); minmax_V: xai.maps

A class whose region is empty has s_c ≡ 0: its map is all zeros and `empty` flags it.

Families: CAMs weigh a layer's activations (xai.methods.cam: a method is its `weights`), perturbation
methods score perturbed inputs, attributions differentiate the score with respect to the input. Each
registers its class (xai.methods.registry) with an options dataclass (xai.options) whose fields say
everything about its options.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..batching import Batches, BatchOptions, progress_bar
from ..contrast import CONTRAST_HELP, Contrast, auto_weights, class_weights, contrast_scores
from ..errors import XAIError
from ..errors import option as flag
from ..layers import ActivationCapture, model_device, preserved_state
from ..maps import minmax
from ..modeling import ScoredModel
from ..options import Options, option
from ..precision import float32_math
from ..syncs import to_host
from ..targets import (
    BOUNDARY_WIDTH,
    REDUCTIONS,
    REGIONS,
    SCORES,
    Region,
    RegionScore,
    check_classes,
    region_masks,
    resolve_class,
)

__all__ = ["Attribution", "Explainer", "ExplainerOptions", "Forward", "progress_bar", "region_of"]


REGION_HELP = (
    "pixels whose class score is explained: pred, gt, tp, fp, fn or all; instances: pred, and --evaluate also "
    "explains each connected component on its own; boundary: the band of --boundary_width pixels inside and "
    "outside the class's predicted border; junction: the pixels where the predicted classes of --junction A B "
    "touch (within --boundary_width), the same for every explained class"
)


@dataclass(frozen=True)
class ExplainerOptions(Options):
    """The options every method has."""

    region: str = option("pred", REGION_HELP, choices=REGIONS)
    score: str | Callable[[torch.Tensor], torch.Tensor] = option(
        "prob",
        "what the region score adds up: the class probability (prob) or its logit; in Python also a callable "
        "from an output batch B×C×H×W to scores B×C'",
        choices=SCORES,
    )
    score_reduction: str = option(
        "sum",
        "the region score: the sum of the scores over the region (the papers'), or their mean",
        choices=REDUCTIONS,
    )
    contrast: str | None = option(None, CONTRAST_HELP, metavar="CLASS")
    boundary_width: int = option(
        BOUNDARY_WIDTH, "the band width in pixels of --region boundary and junction", minimum=1, key="width"
    )
    junction: tuple[str, str] | None = option(
        None,
        "the two classes (names or output ids) whose touching pixels --region junction explains",
        metavar=("A", "B"),
    )
    progress: bool = option(False, "a progress bar over long sweeps", result=False, cli=False)

    def __post_init__(self) -> None:
        """Output ids given as numbers (contrast=2, junction=(1, 2)) are kept as their text, as the CLI gives them."""
        if isinstance(self.contrast, int) and not isinstance(self.contrast, bool):
            object.__setattr__(self, "contrast", str(self.contrast))
        if isinstance(self.junction, (tuple, list)):
            object.__setattr__(self, "junction", tuple(str(c) if isinstance(c, int) else c for c in self.junction))
        super().__post_init__()


def region_of(options: ExplainerOptions, class_names: Sequence[str] | None, num_outputs: int) -> Region:
    """The options' region with its band width and junction's classes as output ids (xai.targets.Region);
    an unknown class, or the same class twice, is one XAIError line."""
    o = options
    if o.region != "junction" or o.junction is None:
        text = f"boundary ±{o.boundary_width} px" if o.region == "boundary" else o.region
        return Region(o.region, o.boundary_width, None, text)
    a, b = (resolve_class(c, class_names, num_outputs, flag("junction")) for c in o.junction)
    if a == b:
        raise XAIError(f"{flag('junction')} needs two different classes, got {o.junction[0]} and {o.junction[1]}")
    return Region("junction", o.boundary_width, (a, b), f"junction {o.junction[0]},{o.junction[1]}")


@dataclass
class Attribution:
    """What one engine call gives for a batch, at the model's input resolution (`Explainer.explain`; the
    photograph-level result of `xai.explain` is `xai.Explanation`). maps: N×C'×H×W in [0,1] on V (0 on
    padding); raw: the same before min-max (after the positive part); classes: output indices; empty:
    N×C' True where the class's region was empty (map all zeros); prediction: N×H×W argmax of the
    model's output on x; probabilities: N×C×H×W float32 every class's probability in that output (the
    softmax of the logits, or the head's own probabilities); confidence: N×H×W the probability of the
    predicted class (probabilities.amax over classes); extra: what the method adds (a CAM's `weights`)."""

    maps: torch.Tensor
    raw: torch.Tensor
    classes: list[int]
    empty: torch.Tensor
    region: str | None
    method: str
    prediction: torch.Tensor | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    target_layer: str | None = None
    confidence: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor | None:
        """A CAM's weights (N×K×C' or N×K×h×w×C'), else None."""
        return self.extra.get("weights")

    def sample(self, i: int) -> Attribution:
        """Image i of the batch as a batch of one (stats stay those of the whole call)."""
        n = self.maps.shape[0]

        def one(t: torch.Tensor) -> torch.Tensor:
            return t[i : i + 1] if t.dim() and t.shape[0] == n else t

        return dataclasses.replace(
            self,
            maps=one(self.maps),
            raw=one(self.raw),
            empty=one(self.empty),
            prediction=None if self.prediction is None else one(self.prediction),
            confidence=None if self.confidence is None else one(self.confidence),
            probabilities=None if self.probabilities is None else one(self.probabilities),
            extra={k: one(v) for k, v in self.extra.items()},
        )


@dataclass
class Forward:
    """One forward pass of x and what a method's attribution needs.

    scores: N×C' region scores s_c(f(x)), differentiable for gradient methods; regions: N×C'×H×W 0/1
    (None with a callable score); valid: N×H×W bool; activations: the captured layer's output (CAMs);
    extra: tensors the method returns beside its maps."""

    x: torch.Tensor
    output: torch.Tensor
    scores: torch.Tensor
    regions: torch.Tensor | None
    classes: list[int]
    valid: torch.Tensor
    activations: torch.Tensor | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    P: torch.Tensor | None = None  # N×C×H×W per-pixel scores of x (what the region score adds up), detached

    def empty(self) -> torch.Tensor:
        """N×C' True where a class's region holds no pixel."""
        if self.regions is None:
            return torch.zeros(self.scores.shape, dtype=torch.bool, device=self.scores.device)
        return self.regions.flatten(2).sum(-1) == 0


class Explainer:
    """`method(x, classes=None, gt=None, valid=None)` -> N×C'×H×W float32 maps in [0,1]; `explain(...)`
    returns the whole Attribution. Built as `Method(model, options)` or `Method(model, **options)`."""

    name: ClassVar[str] = "explainer"
    label: ClassVar[str] = "Explainer"
    family: ClassVar[str] = "cam"
    Options: ClassVar[type[ExplainerOptions]] = ExplainerOptions
    uses_gradients: ClassVar[bool] = False
    class_specific: ClassVar[bool] = True  # False: one map for every class (Eigen-CAM); figures say so
    # True: an image's maps do not depend on the other images of the call (no random draw shaped by the
    # batch), so the pipeline may explain several samples in one call (--samples_per_call)
    batch_invariant: ClassVar[bool] = True
    # what one image of the method's batches is ("masked images"): such a method declares BatchOptions
    # and gets self.batches (options.batch_size images per forward, automatic where None, halved on
    # out-of-memory: xai.batching)
    batch_unit: ClassVar[str | None] = None

    def __init__(self, model: nn.Module, options: ExplainerOptions | None = None, /, **overrides: Any):
        base = self.Options() if options is None else options
        if not isinstance(base, self.Options):
            raise XAIError(f"{self.label} takes {self.Options.__name__}, got {type(base).__name__}")
        self.model = model
        chosen = base.replace(**overrides) if overrides else base
        self.scored = ScoredModel(
            model,
            "prob" if callable(chosen.score) else str(chosen.score),
            compile=isinstance(chosen, BatchOptions) and chosen.compile,
            cudnn_benchmark=isinstance(chosen, BatchOptions) and chosen.cudnn_benchmark,
        )
        self.options = self.configure(chosen)
        self.class_names: list[str] | None = None  # the names contrast and junction may use (name_classes)
        self.contrast: Contrast | None = None  # the subtracted classes' weights of the current call
        if self.options.contrast is not None and callable(self.options.score):
            raise XAIError(f"{flag('contrast')} subtracts region scores: it does not apply to a callable score")
        if self.options.region == "junction" and self.options.junction is None:
            raise XAIError(f"{flag('region')} junction needs its two classes: {flag('junction')} A B")
        if self.batch_unit is not None:
            self.batches = Batches(self.options.batch_size, f"{self.label} sweep", self.batch_unit, self.device)
        self.last: Attribution | None = None

    # ---- what a method implements ----------------------------------------------------------------

    def configure(self, options: Any) -> Any:
        """The options resolved against the model (a layer name found, a precision chosen): what runs."""
        return options

    def attribute(self, fwd: Forward) -> torch.Tensor:
        """The raw attribution A (N×C'×H×W) of every explained class, before the positive part."""
        raise NotImplementedError

    def attribution(self, fwd: Forward) -> torch.Tensor:
        """What the explain path normalises: attribute(fwd), unless a family averages several (a CAM's
        aug_smooth: xai.methods.cam)."""
        return self.attribute(fwd)

    def positive(self, raw: torch.Tensor) -> torch.Tensor:
        """The part of the attribution that counts for the class: ReLU."""
        return torch.relu(raw)

    def capture(self) -> ActivationCapture | None:
        """A hook that records a layer's output during the forward pass of x (CAMs), or None."""
        return None

    def channels_last(self, x: torch.Tensor) -> bool:
        """Whether the model runs in channels_last memory format during a call on inputs like x."""
        return False

    def check_size(self, height: int, width: int) -> None:
        """Refuse (XAIError) options that cannot work on inputs of this size, before a run starts."""

    def uses_batches(self) -> bool:
        """Whether the method's passes are batched by options.batch_size (those of batch_unit)."""
        return self.batch_unit is not None

    def batch_precision(self) -> contextlib.AbstractContextManager[Any]:
        """The compute context of the method's batched forwards (Score-CAM: its precision)."""
        return contextlib.nullcontext()

    def sweep_bar(self, total: int, unit: str = "image") -> Any:
        """The progress bar of a sweep over `total` units, for self.batches.for_each (which advances and
        closes it); None unless options.progress."""
        return progress_bar(self.options.progress, total, f"{self.label} sweep", unit)

    def fit_batches(self, x: torch.Tensor, channels_last: bool) -> None:
        """An automatic batch size (batch_size None) for inputs like x: measured once per input shape and
        layout with batched forwards of copies of x[:1] as the method runs them (xai.batching.Batches.fit):
        under inference mode, or with the input's gradient for gradient methods."""
        if not self.uses_batches() or not self.batches.automatic:
            return
        example = x[:1].detach()
        layout = torch.channels_last if channels_last else torch.contiguous_format

        def forward(b: int) -> None:
            inputs = example.expand(b, -1, -1, -1).contiguous(memory_format=layout)
            with self.batch_precision():
                if not self.uses_gradients:
                    with torch.inference_mode():
                        self.forward_scores(inputs)
                    return
                with torch.enable_grad():
                    inputs.requires_grad_(True)
                    _, P = self.forward_scores(inputs)
                    torch.autograd.grad(P.float().sum(), inputs)

        self.batches.fit((tuple(x.shape[1:]), channels_last), forward)

    # ---- the one path ----------------------------------------------------------------------------

    def __call__(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The maps of explain(x, classes=None, gt=None, valid=None); the whole result stays in `last`."""
        self.last = self.explain(x, *args, **kwargs)
        return self.last.maps

    def explain(
        self,
        x: torch.Tensor,
        classes: Sequence[int] | None = None,
        gt: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> Attribution:
        """valid (N×H×W or H×W bool, optional): the pixels that belong to the photograph (not padding);
        regions and the normalisation are restricted to them."""
        x = self._check_input(x)
        valid_mask = self._valid(valid, x)
        if self.uses_gradients and torch.is_inference_mode_enabled():
            raise XAIError(f"{self.label} needs gradients: call it outside torch.inference_mode()")
        t0 = time.perf_counter()
        grad_mode = torch.enable_grad() if self.uses_gradients else torch.inference_mode()
        channels_last = self.channels_last(x)
        with float32_math(tf32=False), preserved_state(self.model, channels_last=channels_last), grad_mode:
            self.fit_batches(x, channels_last)
            fwd = self.forward(x, classes, gt, valid_mask)
            raw = self.attribution(fwd)
        if self.uses_batches() and self.batches.size:
            fwd.stats["batch_size"] = self.batches.size
        with torch.inference_mode():
            empty = fwd.empty()
            raw = self.positive(raw.detach().float()).masked_fill(empty[:, :, None, None], 0.0)
            maps = minmax(raw, valid_mask[:, None])
            probabilities = self.scored.probabilities_of(fwd.output.detach()).float()
        return Attribution(
            maps=maps,
            raw=raw,
            classes=fwd.classes,
            empty=empty,
            region=None if callable(self.options.score) else self.options.region,
            method=self.name,
            prediction=fwd.output.detach().argmax(1),
            confidence=probabilities.amax(1),
            probabilities=probabilities,
            stats={**fwd.stats, "seconds": time.perf_counter() - t0},
            extra={k: v.detach() for k, v in fwd.extra.items()},
            target_layer=getattr(self.options, "target_layer", None),
        )

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise XAIError(f"{self.label} expects an N×C×H×W tensor, got {getattr(x, 'shape', type(x))}")
        if not to_host(torch.isfinite(x).all()):
            raise XAIError(f"{self.label}: the input holds NaN or infinite values")
        return x.to(self.device, torch.float32)

    def _valid(self, valid: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], x.shape[-2], x.shape[-1])
        if valid is None:
            return torch.ones(shape, dtype=torch.bool, device=x.device)
        v = torch.as_tensor(valid, device=x.device).bool()
        v = v.unsqueeze(0).expand(x.shape[0], -1, -1) if v.dim() == 2 else v
        if tuple(v.shape) != shape:
            raise XAIError(f"valid mask of shape {tuple(v.shape)} does not match the input's {shape}")
        return v

    def forward_scores(
        self, x: torch.Tensor, through: Any = None, batched: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(model output, per-pixel class scores P) of one forward pass (of through(x) when given: a part of
        the model that ends in its head): P is what the region score adds up (the raw output for a callable
        score). batched: a sweep's chunk (torch.compile and cuDNN's search where asked: ScoredModel.run)."""
        if callable(self.options.score):
            output = self.scored.run(x, through, batched)
            return output, output
        return self.scored.forward(x, through, batched)

    @property
    def region_score(self) -> RegionScore:
        return RegionScore("prob" if callable(self.options.score) else self.options.score, self.options.score_reduction)

    def class_score(
        self, regions: torch.Tensor | None, classes: Sequence[int], j: int, calls: list[int], image: int = 0
    ) -> Any:
        """inputs (B×3×H×W) -> B region scores of classes[j] (regions: C'×H×W of the call's image `image`): the
        forward function captum attributes; counts the images it scores in calls[0]."""

        def score(inputs: torch.Tensor) -> torch.Tensor:
            calls[0] += inputs.shape[0]
            _, P = self.forward_scores(inputs, batched=not self.uses_gradients)
            return self.region_scores(P.float(), regions, classes, image=image)[:, j]

        return score

    def region_scores(
        self,
        P: torch.Tensor,
        regions: torch.Tensor | None,
        classes: Sequence[int],
        image_index: torch.Tensor | None = None,
        image: int | None = None,
    ) -> torch.Tensor:
        """s (B×C'): the region score of each class on each row of P, or the score callable's output. Rows
        belong to the call's images image_index[b], or all to `image` (regions C'×H×W of that image)."""
        if callable(self.options.score):
            s = self.options.score(P)
            if not isinstance(s, torch.Tensor) or s.dim() != 2 or s.shape[0] != P.shape[0]:
                raise XAIError(f"the score callable must return a B×C' tensor, got {getattr(s, 'shape', type(s))}")
            return s.float()
        assert regions is not None
        if self.contrast is None:
            return self.region_score(P.float(), regions, classes, image_index)
        if image is None and image_index is None and regions.dim() == 3:
            image = 0
        return contrast_scores(self.region_score, P.float(), regions, classes, self.contrast, image_index, image)

    def name_classes(self, names: Sequence[str]) -> None:
        """The class names (by output id) that contrast and junction may give; they are checked now, in one
        XAIError line (an unknown class) before any image is read."""
        self.class_names = [str(n) for n in names]
        self._contrast_class(len(self.class_names), [])
        self.region_spec(len(self.class_names))

    def _contrast_class(self, num_outputs: int, explained: Sequence[int]) -> int | None:
        """The output id of contrast=CLASS (None: no contrast, or "auto"); it may not be an explained class."""
        given = self.options.contrast
        if given is None or given == "auto":
            return None
        k = resolve_class(given, self.class_names, num_outputs, flag("contrast"))
        if k in explained:
            raise XAIError(
                f"{flag('contrast')} {given} is also an explained class (its contrast with itself is 0): "
                f"leave it out of the explained classes ({flag('classes')})"
            )
        return k

    def region_spec(self, num_outputs: int) -> Region:
        """The region with its band width and the output ids of junction's classes (xai.targets.Region)."""
        return region_of(self.options, self.class_names, num_outputs)

    def forward(
        self, x: torch.Tensor, classes: Sequence[int] | None, gt: torch.Tensor | None, valid: torch.Tensor
    ) -> Forward:
        """The forward pass of x (with the method's capture), the regions and their scores."""
        capture = self.capture()
        with capture if capture is not None else contextlib.nullcontext():
            output, P = self.forward_scores(x)
        activations = capture.value if capture is not None else None
        if callable(self.options.score):
            scores = self.region_scores(P, None, [])
            return Forward(x, output, scores, None, list(range(scores.shape[1])), valid, activations, P=P.detach())
        class_ids = check_classes(classes, P.shape[1])
        regions = self._regions(output.detach(), gt, class_ids, valid)
        self._set_contrast(output.detach(), regions, class_ids)
        scores = self.region_scores(P, regions, class_ids)
        return Forward(x, output, scores, regions, class_ids, valid, activations, P=P.detach())

    def _regions(
        self, output: torch.Tensor, gt: torch.Tensor | None, classes: list[int], valid: torch.Tensor
    ) -> torch.Tensor:
        if gt is not None:
            gt = torch.as_tensor(gt)
            gt = gt.unsqueeze(0) if gt.dim() == 2 else gt
        regions = region_masks(output.argmax(1), gt, classes, self.region_spec(output.shape[1]), output.shape[1])
        return regions * valid.unsqueeze(1).to(regions.dtype)

    def _set_contrast(self, output: torch.Tensor, regions: torch.Tensor, classes: list[int]) -> None:
        """The subtracted classes' weights of this call (xai.contrast), held fixed for all its scores."""
        self.contrast = None
        if self.options.contrast == "auto":
            with torch.no_grad():
                self.contrast = auto_weights(self.scored.probabilities_of(output).float(), regions, classes)
            return
        k = self._contrast_class(output.shape[1], classes)
        if k is not None:
            self.contrast = class_weights(k, output.shape[0], len(classes), output.shape[1], output.device)
