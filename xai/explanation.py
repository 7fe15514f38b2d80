"""What `xai.explain` gives back: per photograph its prediction, probabilities and every method's maps on the
photograph, a figure, overlays, the CLI's files and the evaluation, all from the pipeline's one run (Session)."""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from .checkpoint import LoadedModel
from .errors import XAIError
from .figures import DEFAULT_CMAP, heatmap_overlay
from .figures.comparison import comparison_page
from .methods import Attribution
from .pipeline.execution import explain_samples
from .pipeline.options import RunOptions
from .pipeline.samples import Explained, Sample, as_sample
from .pipeline.setup import GivenPhotographs, Setup, prepare, resolve
from .precision import float32_math
from .syncs import to_host

__all__ = ["Evaluation", "Explanation", "Explanations", "Session"]


@dataclass
class Session:
    """One xai.explain call as a run of the pipeline: its options, the model, the photographs and the Setup
    that `prepare` made of them (the same as the CLIs')."""

    opts: RunOptions
    loaded: LoadedModel
    given: GivenPhotographs
    setup: Setup

    @classmethod
    def open(
        cls,
        loaded: LoadedModel | None,
        given: GivenPhotographs,
        *,
        methods: tuple[str, ...],
        run_values: dict[str, Any],
        method_values: dict[str, Any],
        classes: Sequence[str | int] | None,
        model_path: str,
    ) -> Session:
        """The run's options (RunOptions, checked as the CLIs' are), the model (loaded once) and the Setup."""
        images = tuple(s if s is not None else f"<{n}>" for s, n in zip(given.sources, given.names, strict=True))
        opts = RunOptions(
            model_path=model_path,
            methods=methods,
            images=images,
            method_options=method_values,
            workers=0,
            command=("xai.explain",),
            **run_values,
        )
        resolved = resolve(opts, loaded)
        _check_outputs(resolved.loaded, resolved.class_names)
        if classes is not None:
            opts = opts.replace(classes=tuple(_class_name(c, resolved.class_names) for c in classes))
        return cls(opts, resolved.loaded, given, prepare(opts, resolved.loaded, given))

    def explain_all(self) -> Explanations:
        """Every photograph explained, those of one input size `samples_per_call` at a time."""
        from tqdm.auto import tqdm

        from .pipeline.explain_stage import _groups

        setup = self.setup
        execution = dataclasses.replace(setup.execution(), keep_results=True)
        samples = [as_sample(setup.dataset[i]) for i in setup.indices]
        done: list[Explanation] = []
        with tqdm(total=len(samples), unit="image", disable=not self.opts.progress or len(samples) < 2) as bar:
            for group in _groups(iter(samples), lambda: self.opts.samples_per_call):
                with float32_math(tf32=False):
                    explained = explain_samples(group, execution)
                for ex in explained:
                    ex.results = {m: (_for_evaluation(a), secs) for m, (a, secs) in (ex.results or {}).items()}
                done += [Explanation(self, ex, s) for ex, s in zip(explained, group, strict=True)]
                bar.update(len(group))
        return Explanations(done)

    def with_options(self, **changes: Any) -> Setup:
        """A Setup of the same model and photographs under options changed (output_dir, the evaluation's)."""
        return prepare(self.opts.replace(**changes), self.loaded, self.given)


def _for_evaluation(result: Attribution) -> Attribution:
    """What Explanation.evaluate needs of an engine's result (its maps and prediction), on the host: a
    GPU's memory is for the next photograph, and the evaluation reads them on the host anyway."""

    def host(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(to_host(t))

    assert result.prediction is not None
    empty = torch.empty(0)
    return dataclasses.replace(
        result,
        maps=host(result.maps),
        raw=empty,
        prediction=host(result.prediction),
        confidence=None,
        probabilities=None,
        extra={},
    )


def _class_name(c: str | int, names: list[str]) -> str:
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
        if not 0 <= int(c) < len(names):
            raise XAIError(f"class id {c} is not an output of the model (ids 0..{len(names) - 1}: {', '.join(names)})")
        return names[int(c)]
    if str(c) not in names:
        raise XAIError(f"unknown class '{c}'; the model's classes are {', '.join(names)}")
    return str(c)


def _check_outputs(loaded: LoadedModel, names: list[str]) -> None:
    """A model given as an nn.Module whose head has another number of outputs than the classes named."""
    if loaded.kind == "module" and loaded.num_classes and loaded.num_classes != len(names):
        raise XAIError(
            f"the model has {loaded.num_classes} outputs, but {len(names)} classes are named ({', '.join(names)}): "
            "give class_names=[...] in output order, or config="
        )


class Explanation:
    """One photograph explained by `xai.explain`: everything on the photograph (H×W, its own size).

    Attributes:
        name: the photograph's name (its file name; `image{i}` for an array).
        source: its path (None for an array or a PIL image).
        classes: the names of the explained classes, in the order of the maps.
        methods: the methods, in the order asked.
    """

    def __init__(self, session: Session, explained: Explained, sample: Sample):
        self._session, self._ex, self._sample = session, explained, sample
        setup = session.setup
        self.name, self.source = explained.name, explained.source
        self.classes = [setup.class_names[c] for c in setup.class_ids]
        self.methods = list(explained.maps)

    def __repr__(self) -> str:
        h, w = self.image.shape[:2]
        return f"Explanation({self.name!r}, {w}×{h}, methods={self.methods}, classes={self.classes})"

    @property
    def image(self) -> np.ndarray:
        """The photograph: H×W×3 uint8 RGB."""
        return self._ex.rgb

    @property
    def prediction(self) -> np.ndarray:
        """H×W uint8: the predicted class id of each pixel of the photograph."""
        return self._ex.pred

    @functools.cached_property
    def probabilities(self) -> np.ndarray:
        """C×H×W float32: every class's probability at each pixel of the photograph (the softmax of the
        logits, or the head's own probabilities) of the run's forward pass, mapped back through the letterbox
        (bilinear). The run keeps them as float16 at the input resolution (half the memory of float32), so
        each value is the model's rounded to float16 (off by at most 2**-11 of itself: 2.4e-4 at most for a
        probability) and the classes sum to 1 within 2**-11 (4.9e-4)."""
        p = self._ex.probabilities_input
        assert p is not None  # every engine's result has them
        box = self._ex.letterbox
        return np.stack([box.to_original(c.astype(np.float32)) for c in p]).astype(np.float32)

    @functools.cached_property
    def maps(self) -> dict[str, np.ndarray]:
        """Per method, C'×H×W float32 in [0, 1] on the photograph, C' = `classes` (zeros for a class whose
        region was empty): the values `load_maps(npz).on_photograph(method)` gives for the CLI's file."""
        box = self._ex.letterbox
        return {
            m: np.stack([box.to_original(s) for s in stack]).astype(np.float32) for m, stack in self._ex.maps.items()
        }

    @property
    def empty(self) -> dict[str, list[str]]:
        """Per method, the classes whose region was empty (nothing explained: the map is zeros)."""
        return {m: [c for c, e in zip(self.classes, flags, strict=True) if e] for m, flags in self._ex.empty.items()}

    def map(self, method: str, class_name: str) -> np.ndarray:
        """H×W float32 in [0, 1]: one method's map of one class on the photograph."""
        return self.maps[self._method(method)][self._class(class_name)]

    def overlay(self, method: str, class_name: str, alpha: float = 0.5, cmap: str = DEFAULT_CMAP) -> np.ndarray:
        """H×W×3 uint8 RGB: the map of `class_name` by `method` over the photograph (the figures' overlay)."""
        return heatmap_overlay(self.image, self.map(method, class_name), alpha=alpha, cmap=cmap)

    def show(self, class_name: str | Sequence[str] | None = None, methods: Sequence[str] | None = None) -> Figure:
        """A figure of one class (or several, or every explained class): the photograph, the prediction, then
        each method's map over the photograph, one row per class (the CLI's comparison figure). Jupyter
        shows it inline; `fig.savefig(path)` writes it.

        Args:
            class_name: a class name, a list of them, or None for every explained class.
            methods: the methods to show (default: every one, in the order asked).
        """
        names = [class_name] if isinstance(class_name, str) else list(class_name or self.classes)
        ids = [self._session.setup.class_names.index(self.classes[self._class(n)]) for n in names]
        view = self._session.setup.presentation().view(self._ex)
        shown = [self._method(m) for m in (methods or self.methods)]
        maps = {view.labels[m]: [view.maps[m].get(c) for c in range(len(view.class_names))] for m in shown}
        notes = {(view.labels[m], view.class_names[c]): t for m in shown for c, t in view.notes[m].items()}
        page = comparison_page(
            view.rgb,
            view.gt,
            view.pred,
            maps,
            view.class_names,
            view.colors,
            ids,
            notes,
            title=f"{self.name}: {' vs '.join(view.labels[m] for m in shown)} (region {view.region})",
        )
        return picture(page.render(), page.dpi)

    def save(self, output_dir: str | Path) -> dict[str, Any] | None:
        """Write the CLI's files for this photograph (figures, raw_maps npz, summaries, gallery, manifest) into
        `output_dir`, as `--images` writes them; returns the manifest."""
        return Explanations([self]).save(output_dir)

    def evaluate(self, **options: Any) -> Evaluation:
        """The `--evaluate` metrics of these maps: the rows metrics.csv gets for this photograph (one per
        method, class and metric), with the curves and the sanity check beside them.

        Args:
            **options: the evaluation's options by name (eval_steps, road, stability_samples, sanity_samples,
                variants, ...: xai.evaluation.settings.EvaluationOptions).

        Returns:
            An `Evaluation`: a list of row dicts (class, method, variant, metric, value, reason), with
            `.curves` (per variant and class, the deletion and insertion curves) and `.sanity` (the
            cascading randomisation's results, for the first `sanity_samples` photographs of the call).
        """
        setup = self._session.with_options(evaluate=True, **options)
        x = self._sample.image[None].to(setup.device)
        valid = torch.from_numpy(self._ex.letterbox.valid()).to(setup.device)
        assert self._ex.results is not None  # Session.explain_all keeps them
        with float32_math(tf32=False):
            measured = setup.evaluator.evaluate(self._ex.index, x, None, valid, self._ex.results)
        return Evaluation(measured.rows, curves=measured.curves, sanity=measured.sanity)

    def _method(self, method: str) -> str:
        if method not in self._ex.maps:
            raise XAIError(f"no maps of '{method}' here; explained with {', '.join(self.methods)}")
        return method

    def _class(self, class_name: str) -> int:
        if class_name not in self.classes:
            raise XAIError(f"class '{class_name}' was not explained; the explained classes: {', '.join(self.classes)}")
        return self.classes.index(class_name)


class Evaluation(list[dict[str, Any]]):
    """Explanation.evaluate's result: the metric rows, with the curves and the sanity check's results."""

    def __init__(self, rows: list[dict[str, Any]], *, curves: dict[str, Any], sanity: dict[str, Any]):
        super().__init__(rows)
        self.curves, self.sanity = curves, sanity


class Explanations(list[Explanation]):
    """The Explanation of each photograph of one xai.explain call, in the order given."""

    def save(self, output_dir: str | Path) -> dict[str, Any] | None:
        """Write the CLI's files for these photographs into `output_dir` (as `--images` writes them); returns
        the manifest."""
        from .pipeline.runner import save

        if not self:
            raise XAIError("nothing to save: no photograph was explained")
        session = self[0]._session
        if any(e._session is not session for e in self):
            raise XAIError("these explanations come from different xai.explain calls: save each call's apart")
        setup = session.with_options(output_dir=str(output_dir))
        return save(setup, [e._ex for e in self])


class PictureFigure(Figure):
    """A matplotlib Figure of one rendered picture, which Jupyter shows inline (`_repr_png_`) without pyplot."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=self.dpi)
        return buffer.getvalue()


def picture(rgb: np.ndarray, dpi: int) -> Figure:
    """A Figure showing H×W×3 pixels 1:1 at `dpi`, without axes."""
    h, w = rgb.shape[:2]
    fig = PictureFigure(figsize=(w / dpi, h / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(rgb, interpolation="none")
    ax.set_axis_off()
    return fig
