"""What --evaluate measures, declared once (xai.options): the run's evaluation options, and the settings
the evaluator derives from the run.

`EvaluationOptions` are options of every run (flags, checks, resume key and manifest follow from the
fields); `EvaluationSettings` adds what the run decides for the evaluator (seed, noise in normalised
units, batches, how maps are stored).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data import IMAGENET_MEAN, IMAGENET_STD
from ..errors import XAIError
from ..errors import option as flag
from ..metrics.faithfulness import CURVE_STEPS
from ..options import Options, option
from ..precision import PRECISIONS

__all__ = ["EVALUATION", "EvaluationOptions", "EvaluationSettings", "split_pair"]

EVALUATION = "evaluation (--evaluate)"  # the --help section of the evaluation's options
DEFAULT_STD = 0.226  # the mean of ImageNet's std: the noise radii's unit when no normalisation is given


def split_pair(text: str) -> tuple[str, str]:
    """("A", "B") of a paired difference written "A@B"; XAIError for any other text."""
    a, sep, b = text.partition("@")
    if not sep or not a or not b or a == b:
        raise XAIError(f"{flag('pairs')} wants A@B with two different evaluated variants, got '{text}'")
    return a, b


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions(Options):
    """The evaluation's options of a run (docs/faithfulness.md)."""

    evaluate: bool = option(
        False,
        "also measure how faithful each map is (deletion, insertion, ROAD, Average Drop/Increase, localisation, "
        "sanity check): metrics.csv, report.html",
        section=EVALUATION,
    )
    variants: tuple[str, ...] = option(
        (),
        "method settings evaluated beside --methods (implies --evaluate), e.g. "
        "'scorecam:layer=decoder,baseline=none gradcam:layer=encoder.layer3'; keys: any option of the "
        "method, by name or short key (layer, maps, select, batch, ...)",
        section=EVALUATION,
        metavar="SPEC",
    )
    pairs: tuple[str, ...] = option(
        (),
        "paired differences A − B of evaluated variants in the report (default: the first method against each "
        "other one)",
        result=False,
        section=EVALUATION,
        metavar="A@B",
    )
    eval_steps: int = option(CURVE_STEPS, "steps S of the deletion and insertion curves", minimum=2, section=EVALUATION)
    road: bool = option(
        True,
        "leave ROAD out of --evaluate (its noisy linear imputation is the costliest metric on a CPU: about 0.1 s "
        "per perturbed 128x256 image on one core, 18 images per map and class)",
        flag="no_road",
        section=EVALUATION,
    )
    stability_samples: int = option(
        3,
        "noisy copies (±0.02 of the intensity range, seeded) per sample and method for max-sensitivity and the "
        "Spearman correlation under noise (0: none); each costs one more explanation",
        minimum=0,
        section=EVALUATION,
    )
    eval_precision: str = option(
        "auto",
        "the evaluation's forward passes (every perturbed image): fp32 (IEEE, TF32 off), tf32 (TensorFloat-32 "
        "on GPUs that have it, else fp32), bf16 or fp16 under autocast; auto: bf16 where the hardware runs it "
        "natively (CUDA with bf16, CPUs with AVX512-BF16/AMX), else fp32. The manifest and the report say "
        "what ran and why",
        choices=PRECISIONS,
        section=EVALUATION,
    )
    quantus_metrics: bool = option(
        False,
        "also measure Faithfulness Correlation, IROF, Random Logit and the Local Lipschitz estimate (Quantus' "
        "definitions): about 100 more forwards per sample and 100 per map and class, and 1 + 3 more explanations "
        "per class and method",
        section=EVALUATION,
    )
    sanity_samples: int = option(
        2,
        "the first N samples of the split also get the cascading-randomisation sanity check (0: none)",
        minimum=0,
        section=EVALUATION,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variants and not self.evaluate:  # --variants implies --evaluate
            object.__setattr__(self, "evaluate", True)
        for text in self.pairs:
            split_pair(text)

    @property
    def pair_list(self) -> tuple[tuple[str, str], ...]:
        """The paired differences asked for, as (A, B)."""
        return tuple(split_pair(text) for text in self.pairs)


@dataclass(frozen=True, kw_only=True)
class EvaluationSettings(EvaluationOptions):
    """The evaluator's settings: the run's evaluation options, and what follows from the rest of the run."""

    schedules: tuple[str, ...] = option(("linear", "area"), "deletion and insertion schedules", cli=False)
    batch_size: int | None = option(
        None, "images per forward pass (None: automatic, xai.memory)", minimum=1, result=False, cli=False
    )
    compile: bool = option(False, "torch.compile the perturbed images' forwards", result=False, cli=False)
    cudnn_benchmark: bool = option(False, "cuDNN's algorithm search per input shape", result=False, cli=False)
    map_dtype: str = option(
        "float32", "every map the evaluation makes is rounded as the run's files store maps", cli=False
    )
    seed: int = option(0, "seed of the evaluation's random parts", cli=False)
    contrast: int | str | None = option(
        None,
        "the score the perturbation metrics measure: each class's own (None), or its contrast with the output id "
        "k or 'auto' (the run's --contrast, xai.contrast), for every evaluated map and reference",
        cli=False,
    )
    road_noise: float = option(
        0.01 / DEFAULT_STD, "ROAD's noise in normalised units (the authors' 0.01 on [0, 1] images)", cli=False
    )
    stability_radius: float = option(
        0.02 / DEFAULT_STD, "uniform noise ±r in normalised units (0.02 of the [0, 1] range)", cli=False
    )
    pixel_mean: tuple[float, ...] = option(
        IMAGENET_MEAN,
        "the input's normalisation mean per channel (the photograph's pixels are x·std + mean)",
        cli=False,
    )
    pixel_std: tuple[float, ...] = option(IMAGENET_STD, "the input's normalisation std per channel", cli=False)
    ring_width: int = option(3, "pixels of the ring just outside a region (boundary precision)", cli=False)
    size_bins: tuple[int, ...] = option(
        (64, 512), "component areas (input pixels) that separate small, medium and large objects", cli=False
    )
    instances: bool = option(False, "explain each connected component of a class's region on its own", cli=False)
    correlation_runs: int = option(100, "Faithfulness Correlation: random subsets T", minimum=2, cli=False)
    correlation_subset: int = option(224, "Faithfulness Correlation: pixels m per subset", minimum=1, cli=False)
    irof_segments: int = option(100, "IROF: superpixels SLIC is asked for", minimum=1, cli=False)
    lipschitz_samples: int = option(3, "Local Lipschitz estimate: noisy copies n per sample", minimum=1, cli=False)
    lipschitz_std: float = option(
        0.1 / DEFAULT_STD, "Local Lipschitz estimate: Gaussian noise σ in normalised units (Quantus' 0.1)", cli=False
    )

    @property
    def steps(self) -> int:
        """S, the steps of the deletion and insertion curves."""
        return self.eval_steps
