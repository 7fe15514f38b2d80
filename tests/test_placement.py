"""Device placement, checked on the meta device: what would break on a GPU, found on a CPU.

On CUDA an operation that mixes a tensor left on the CPU (torch.rand with a CPU generator, a torch.tensor
constant, torch.arange without device=, an array from numpy, a CPU index for gather) with tensors on the
device fails; on a CPU nothing is mixed, so no other test sees it. Here the model's parameters and
buffers and the inputs are on torch.device("meta") (shapes and dtypes, no data, nothing computed), and
`StrictPlacement`, a dispatch mode, refuses every operation that mixes devices where CUDA refuses it,
with "expected device meta" (meta alone lets some through: gather with a CPU index, some einsums and
convolutions with a CPU operand, a CPU generator drawing on the device).

What the harness substitutes, and why:
    xai.syncs.to_host, the one sanctioned device-to-host transfer: given a meta tensor it returns a host
        array of its shape and dtype holding values that keep the code going (`host_stand_in`). Every
        other look at the data (`.item()`, `int(t)`, `if t.any():`, `.tolist()`, `nonzero`, `.cpu()`)
        fails on meta: a host synchronisation outside the seam. On a CPU, xai.syncs.SyncCounter does not
        see all of them (`.tolist()`, `torch.allclose`, and `.item()` under inference mode escape it).
    torch.Generator("meta"): meta has no generators; a CPU generator seeded with META_GENERATOR_SEED
        stands in, and is the only CPU generator the mode lets draw on meta.

Out of reach, and why:
    KernelSHAP and LIME: captum reads the feature mask's values (`.item()` in construct_feature_mask)
        and fits its surrogate on the host; the test checks that everything before captum runs on the
        device and that captum is what stops it.
    ROAD's checked solver (sync_free=False, the CPU default, and the redo of an imputation that did not
        converge): it looks at the residuals as it iterates, by design. The stand-in says every
        imputation converged, so the sync-free path that GPUs run is the one checked.
    xai.evaluation.Evaluator and the sanity check: they hand maps, the prediction and the ground truth to
        their numpy and CPU measures with `.cpu()`; the measures are run here on a Context built the
        way the Evaluator builds one (maps and masks on the host, the model and the image on the device).
    Numbers: meta computes nothing, so only placement and shapes are checked; what only CUDA does
        (TF32, autocast to bf16, out-of-memory retries) is not exercised.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import xai.syncs
from tests.helpers import tiny_fpn
from tests.test_samples_per_call import SMALL
from xai.evaluation.evaluate import REFERENCES, EvaluationSettings
from xai.evaluation.measures import Context, metrics
from xai.methods import Attribution, Explainer, Forward, get_method, method_names, methods
from xai.metrics.faithfulness import Faithfulness

META = torch.device("meta")
HOST_COUNT = 4  # the smallest integer read from the device (a pixel or channel count): small, not 0
HOST_VALUE = 0.5  # every float read from the device (a score): positive, finite
META_GENERATOR_SEED = 0x6D657461  # marks the CPU generators that stand in for meta ones
SURROGATES = ("kernel_shap", "lime")  # captum reads their feature masks' values: see the docstring

# what CUDA lets cross devices: copies, and the indices of advanced indexing (it moves them)
_COPIES = frozenset({"_to_copy", "copy_", "_copy_from", "_copy_from_and_resize", "lift_fresh", "set_"})
_INDEXING = frozenset({"index", "index_put", "index_put_", "_index_put_impl_", "_unsafe_index", "_unsafe_index_put"})
_REAL_GENERATOR = torch.Generator


def host_stand_in(t: torch.Tensor) -> np.ndarray:
    """What to_host returns for a meta tensor: its shape and dtype, holding True (inputs finite,
    imputations converged, maps vary), HOST_VALUE (scores positive) or positive counts that decrease in
    steps of HOST_COUNT down to it (a total read before its parts, as the photograph's pixels before each
    region's, exceeds each part)."""
    dtype = torch.empty((), dtype=t.dtype).numpy().dtype
    if dtype == np.bool_:
        return np.ones(tuple(t.shape), dtype=dtype)
    if np.issubdtype(dtype, np.integer):
        return (HOST_COUNT * np.arange(t.numel(), 0, -1)).reshape(tuple(t.shape)).astype(dtype)
    return np.full(tuple(t.shape), HOST_VALUE, dtype=dtype)


class StrictPlacement(TorchDispatchMode):
    """Refuses, as CUDA does, an aten operation whose tensors lie on different devices (copies, CPU
    indices of advanced indexing and CPU scalars aside), or that draws on one device with another's
    generator."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = func.__name__.split(".")[0]
        if name not in _COPIES:
            checked = (args[:1] + args[2:]) if name in _INDEXING else args
            tensors = [t for t in tree_flatten((checked, kwargs))[0] if isinstance(t, torch.Tensor)]
            devices = {t.device for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
            if len(devices) > 1:
                raise RuntimeError(f"{func}: tensors on {sorted(map(str, devices))}: expected device meta")
            generator = kwargs.get("generator")
            target = torch.device(kwargs["device"]) if kwargs.get("device") else next(iter(devices), None)
            if generator is not None and target is not None and not _generator_fits(generator, target):
                raise RuntimeError(f"{func}: a generator on {generator.device} draws on {target}: expected device meta")
        return func(*args, **kwargs)


def _generator_fits(generator: torch.Generator, device: torch.device) -> bool:
    if device.type == "meta":
        return generator.device.type == "cpu" and generator.initial_seed() == META_GENERATOR_SEED
    return generator.device.type == device.type


class _MetaGenerator(_REAL_GENERATOR):
    """The stand-in for a generator on meta: a CPU generator whose seed marks it (meta draws no numbers)."""

    def manual_seed(self, seed: Any) -> _MetaGenerator:
        super().manual_seed(META_GENERATOR_SEED)
        return self


class _GeneratorType(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _REAL_GENERATOR)

    def __call__(cls, device: Any = "cpu") -> torch.Generator:
        if torch.device(device).type == "meta":
            return _MetaGenerator().manual_seed(0)
        return _REAL_GENERATOR(device)


class _Generator(metaclass=_GeneratorType):
    """torch.Generator, except that torch.Generator("meta") gives the stand-in."""


@pytest.fixture
def on_meta(monkeypatch: pytest.MonkeyPatch) -> StrictPlacement:
    """to_host answers for meta tensors (in every module that imported it) and torch.Generator("meta")
    works; returns the mode that checks placement inside a `with`."""
    real = xai.syncs.to_host
    method_names()  # imports every method's module

    def to_host(t: torch.Tensor) -> np.ndarray:
        return host_stand_in(t) if t.device.type == "meta" else real(t)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("xai") and getattr(module, "to_host", None) is real:
            monkeypatch.setattr(module, "to_host", to_host)
    monkeypatch.setattr(torch, "Generator", _Generator)
    return StrictPlacement()


@pytest.fixture(scope="module")
def meta_models() -> Iterator[dict[str, torch.nn.Module]]:
    """The tiny FPN on meta, with logits ("logits") and with a sigmoid head ("sigmoid")."""
    yield {"logits": tiny_fpn().to(META), "sigmoid": tiny_fpn(activation="sigmoid").to(META)}


@pytest.fixture
def model(meta_models: dict[str, torch.nn.Module]) -> Callable[..., torch.nn.Module]:
    """A fresh copy of a meta model (copies of meta tensors cost nothing)."""

    def fresh(head: str = "logits") -> torch.nn.Module:
        return copy.deepcopy(meta_models[head])

    return fresh


def meta_batch(n: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, gt, valid) of n images on meta."""
    return (
        torch.empty(n, 3, size, size, device=META),
        torch.empty(n, size, size, dtype=torch.long, device=META),
        torch.empty(n, size, size, dtype=torch.bool, device=META),
    )


def host_batch(n: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, gt, valid) of n images on the CPU, as the pipeline passes gt and valid (x is moved by the method)."""
    return torch.zeros(n, 3, size, size), torch.ones(n, size, size, dtype=torch.long), torch.ones(n, size, size).bool()


def explain(engine: Explainer, inputs: str = "device") -> Attribution:
    x, gt, valid = meta_batch() if inputs == "device" else host_batch()
    return engine.explain(x, classes=[1, 3], gt=gt, valid=valid)


def engine_of(name: str, model: torch.nn.Module, **options: Any) -> Explainer:
    return get_method(name).cls(model, **{**SMALL.get(name, {}), **options})


# ---- the harness catches what it must -------------------------------------------------------------


class Misplaced(Explainer):
    """A method that leaves a tensor on the CPU (or looks at the data) in one of the ways CUDA refuses."""

    def __init__(self, model: torch.nn.Module, mistake: str):
        super().__init__(model)
        self.mistake = mistake

    def attribute(self, fwd: Forward) -> torch.Tensor:
        assert fwd.regions is not None
        regions, plane = fwd.regions, fwd.regions.shape[-2:]
        if self.mistake == "constant":
            return regions * torch.ones(plane)
        if self.mistake == "gather_index":
            return regions.gather(3, torch.zeros(regions.shape, dtype=torch.long))
        if self.mistake == "einsum":
            return torch.einsum("nchw,hw->nchw", regions, torch.ones(plane))
        if self.mistake == "generator":
            return regions * torch.rand(regions.shape, generator=torch.Generator(), device=regions.device)
        if self.mistake == "numpy":
            return regions + torch.from_numpy(np.ones(tuple(regions.shape), dtype=np.float32))
        if self.mistake == "host_look":
            return regions * float(regions.sum())
        return regions


@pytest.mark.parametrize("mistake", ["constant", "gather_index", "einsum", "generator", "numpy"])
def test_a_cpu_tensor_mixed_in_by_a_method_is_caught(on_meta, model, mistake):
    with on_meta, pytest.raises(RuntimeError, match="expected device meta"):
        explain(Misplaced(model(), mistake))


@pytest.mark.parametrize("mistake", ["gather_index", "generator"])
def test_meta_alone_lets_these_through_so_the_mode_is_needed(on_meta, model, mistake):
    result = explain(Misplaced(model(), mistake))
    assert result.maps.device == META


def test_a_look_at_the_data_outside_to_host_is_caught(on_meta, model):
    with on_meta, pytest.raises(RuntimeError, match="cannot be called on meta tensors"):
        explain(Misplaced(model(), "host_look"))


def test_the_same_method_without_a_mistake_runs(on_meta, model):
    with on_meta:
        result = explain(Misplaced(model(), "none"))
    assert result.maps.device == META and result.maps.shape == (2, 2, 64, 64)


def test_to_host_stands_in_for_meta_tensors_only(on_meta):
    assert xai.syncs.to_host(torch.empty(2, 3, dtype=torch.bool, device=META)).all()
    np.testing.assert_array_equal(xai.syncs.to_host(torch.empty(3, dtype=torch.long, device=META)), [12, 8, 4])
    np.testing.assert_array_equal(xai.syncs.to_host(torch.arange(3)), [0, 1, 2])


# ---- every method -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in method_names() if n not in SURROGATES])
def test_every_method_runs_with_the_model_on_the_device(on_meta, model, name):
    with on_meta:
        result = explain(engine_of(name, model()))
    assert result.maps.shape == (2, 2, 64, 64)
    assert {result.maps.device, result.empty.device, getattr(result.prediction, "device", None)} == {META}


ONE_PER_FAMILY = sorted({info.family: name for name, info in methods().items() if name not in SURROGATES}.values())


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_inputs_on_the_host_are_moved_to_the_device(on_meta, model, name):
    """x, gt and valid on the CPU, as the pipeline passes gt and valid: the methods see them on the device
    (they see them only through the shared explain path, so one method per family is enough)."""
    with on_meta:
        result = explain(engine_of(name, model()), "host")
    assert result.maps.device == META


@pytest.mark.parametrize(
    "name, options",
    [
        ("scorecam", {"channel_selection": "random", "weights": "softmax"}),
        ("scorecam", {"channel_selection": "energy", "weights": "raw", "baseline": "none"}),
        ("ablationcam", {"remainder": "full", "batch_size": 64}),  # the whole model per copy: one chunk
        ("occlusion", {"occlusion_value": "black"}),
        ("occlusion", {"occlusion_value": "zero"}),
        ("uncertainty", {"sampling": "dropout", "measure": "entropy"}),
        ("gradcam", {"score": "logit", "score_reduction": "mean", "region": "fp"}),
        ("gradcam", {"score": lambda output: output.mean((2, 3))}),
        ("occlusion", {"score": lambda output: output.mean((2, 3))}),
        ("smoothgrad", {"nt_type": "vargrad"}),
    ],
)
def test_the_options_that_take_other_paths_run_on_the_device(on_meta, model, name, options):
    with on_meta:
        result = explain(engine_of(name, model(), **options))
    assert result.maps.device == META


@pytest.mark.parametrize("name, options", [("uncertainty", {}), ("scorecam", {}), ("gradcam", {"score": "logit"})])
def test_a_model_whose_head_ends_in_a_sigmoid_runs_on_the_device(on_meta, model, name, options):
    with on_meta:
        engine = engine_of(name, model("sigmoid"), **options)
        x, _, valid = meta_batch()
        result = engine.explain(x, valid=valid[0])  # every class; one H×W mask for the batch
    assert result.maps.shape == (2, 5, 64, 64) and result.maps.device == META


@pytest.mark.parametrize("name", SURROGATES)
def test_surrogates_reach_captum_with_everything_on_the_device(on_meta, model, name):
    """The superpixels (SLIC on the host, through to_host) and the feature masks are placed on the device;
    what stops the method is captum reading the feature mask's values."""
    with on_meta, pytest.raises(RuntimeError, match="cannot be called on meta tensors") as failure:
        explain(engine_of(name, model()))
    frames = [(str(entry.path), entry.name) for entry in failure.traceback]
    last_of_ours = max(i for i, (path, _) in enumerate(frames) if "/xai/" in path)
    assert frames[last_of_ours][0].endswith("xai/methods/surrogate.py") and frames[last_of_ours][1] == "_fit"
    assert any("/captum/" in path for path, _ in frames[last_of_ours + 1 :])


# ---- the metrics --------------------------------------------------------------------------------


@pytest.mark.parametrize("masks_on", ["meta", "cpu"])
@pytest.mark.parametrize("metric", ["deletion", "insertion", "road", "average_drop_increase", "context_deletion"])
def test_every_faithfulness_metric_runs_with_the_model_on_the_device(on_meta, model, metric, masks_on):
    """One image on meta; maps, regions and valid on meta, or on the host as the evaluation passes them."""
    kwargs: dict[str, Any] = {"steps": 8} if metric in ("deletion", "insertion", "context_deletion") else {}
    if metric == "road":
        kwargs = {"percentiles": (50,)}
    regions = torch.ones(2, 64, 64, dtype=torch.bool, device=masks_on)
    valid = torch.ones(64, 64, dtype=torch.bool, device=masks_on)
    maps = {"a": torch.zeros(2, 64, 64, device=masks_on), "b": torch.ones(2, 64, 64, device=masks_on)}
    with on_meta:
        faith = Faithfulness(model(), torch.empty(1, 3, 64, 64, device=META), [1, 3], regions, valid, batch_size=16)
        results = getattr(faith, metric)(maps, **kwargs)
    assert set(results) == {"a", "b"} and all(len(per_class) == 2 for per_class in results.values())
    perturbed = {k: n for k, n in faith.forwards.items() if k not in ("unperturbed", "shared")}
    assert len(perturbed) == 1 and next(iter(perturbed.values())) > 0  # the metric's own images ran


def test_the_evaluations_measures_run_with_the_model_on_the_device(on_meta, model):
    """Every measure --evaluate declares, on a Context built as the Evaluator builds one: the model and
    the image on the device, maps, regions and the ground truth on the host."""
    settings = EvaluationSettings(eval_steps=4, stability_samples=0, batch_size=64)
    with on_meta:
        ctx = Context(
            model=model(),
            index=0,
            x=torch.empty(1, 3, 64, 64, device=META),
            gt=torch.ones(64, 64, dtype=torch.long),
            valid=torch.ones(64, 64, dtype=torch.bool),
            classes=[1],
            regions=torch.ones(1, 64, 64, dtype=torch.bool),
            maps={"gradcam": torch.rand(1, 64, 64)},
            settings=settings,
            prediction=torch.ones(64, 64, dtype=torch.long),
            families={"gradcam": "cam"},
        )
        ctx.maps["random"] = REFERENCES["random"].build(ctx)
        measured = {row[2] for declared in metrics() if declared.enabled(settings) for row in declared.compute(ctx)}
    assert {"deletion_auc_linear", "insertion_auc_area", "road_gap", "average_drop", "context_deletion_auc"} <= measured
    assert ctx.faith.forwards["road"] > 0


@pytest.mark.parametrize("methods", [("scorecam", "gradcam"), ("occlusion",)])
def test_xai_explain_runs_with_the_model_on_the_device(on_meta, model, monkeypatch, methods):
    """xai.explain as a notebook calls it, with the device the model is on: the photographs' tensors go to
    the device, every engine runs there, and the maps come back to the host through to_host alone."""
    import xai
    import xai.pipeline.setup

    monkeypatch.setattr(xai.pipeline.setup, "pick_device", lambda name=None: META)
    photograph = np.zeros((50, 70, 3), np.uint8)
    with on_meta:
        result = xai.explain(
            model(), [photograph, photograph], methods, classes=["root"], img_size=(64, 64), batch_size=4
        )
    assert len(result) == 2 and result[0].classes == ["root"]
    assert all(r.maps[m].shape == (1, 50, 70) for r in result for m in methods)
