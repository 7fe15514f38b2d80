"""What every registered method gets from BaseCAM: state restored, hooks removed, empty regions, input
checks, one combine for channel and element-wise weights, custom scores."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch

from tests.helpers import image_batch
from xai.errors import XAIError
from xai.maps import minmax
from xai.methods import BaseCAM, Forward, methods

METHODS = sorted(methods())
LAYER = "encoder.layer2"


# Small settings of the slow methods, so that every registered method runs through every test here.
QUICK: dict[str, dict[str, Any]] = {
    "scorecam": {"max_activation_maps": 8, "precision": "fp32"},
    "occlusion": {"patch_size": 16},
    "rise": {"num_masks": 24, "cell_size": 16},
    "integrated_gradients": {"steps": 4},
    "gradient_shap": {"shap_samples": 3},
    "smoothgrad": {"nt_samples": 3},
    "kernel_shap": {"n_samples": 16, "n_segments": 6},
    "lime": {"n_samples": 16, "n_segments": 6},
    "uncertainty": {"num_mc_samples": 3},
}


def make(name, model, **kw):
    info = methods()[name]
    layer = {"target_layer": LAYER} if "target_layer" in info.options.names() else {}
    return info.cls(model, **layer, **QUICK.get(name, {}), **kw)


@pytest.mark.parametrize("name", METHODS)
def test_state_restored_and_hooks_removed_after_an_error(fpn, name):
    fpn.train()
    fpn.encoder.layer1.eval()  # mixed per-module modes must come back as they were
    fpn.segmentation_head.to(memory_format=torch.channels_last)
    modes = {n: m.training for n, m in fpn.named_modules()}
    formats = {n: p.is_contiguous() for n, p in fpn.named_parameters()}

    def boom(module, inputs, output):
        raise RuntimeError("injected")

    fpn.decoder.register_forward_hook(boom)
    with pytest.raises(RuntimeError, match="injected"):
        make(name, fpn)(image_batch(1, 32, 64))
    fpn.decoder._forward_hooks.clear()
    assert {n: m.training for n, m in fpn.named_modules()} == modes
    assert {n: p.is_contiguous() for n, p in fpn.named_parameters()} == formats
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in fpn.modules())
    assert all(p.grad is None for p in fpn.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_class_absent_from_its_region_gets_a_zero_map_and_a_flag(fpn, name):
    x = image_batch(1, 32, 64)
    with torch.no_grad():
        fpn.segmentation_head[0].bias[4] = -1e4  # class 4 is never predicted
    cam = make(name, fpn)
    maps = cam(x)
    assert torch.equal(maps[0, 4], torch.zeros_like(maps[0, 4])) and bool(cam.last.empty[0, 4])
    assert not cam.last.empty[0, :4].all() and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("name", METHODS)
def test_custom_score_callable(fpn, name):
    box = torch.zeros(32, 64)
    box[5:10, 5:10] = 1
    cam = make(name, fpn, score=lambda out: (out[:, 2] * box).sum((1, 2))[:, None])
    maps = cam(image_batch(2, 32, 64))
    assert maps.shape == (2, 1, 32, 64) and torch.isfinite(maps).all() and cam.last.region is None
    bad = make(name, fpn, score=lambda out: out.sum())
    with pytest.raises(XAIError, match="score callable must return a B×C' tensor"):
        bad(image_batch(1, 32, 64))


@pytest.mark.parametrize("name", METHODS)
def test_options_and_layer_are_checked(fpn, name):
    if "target_layer" in methods()[name].options.names():
        with pytest.raises(XAIError, match=r"nearest valid names: encoder\.layer"):
            methods()[name].cls(fpn, target_layer="encoder.layer9")
    with pytest.raises(XAIError, match="has no option colour"):
        methods()[name].cls(fpn, colour="red")
    with pytest.raises(XAIError, match="unknown region"):
        make(name, fpn, region="nowhere")
    with pytest.raises(XAIError, match="needs the ground truth"):
        make(name, fpn, region="tp")(image_batch(1, 32, 64))
    with pytest.raises(XAIError, match="NaN or infinite"):
        make(name, fpn)(torch.full((1, 3, 32, 64), float("nan")))
    with pytest.raises(XAIError, match="out of range"):
        make(name, fpn)(image_batch(1, 32, 64), classes=[7])


def test_gradient_methods_refuse_inference_mode(fpn):
    for name in METHODS:
        cam = make(name, fpn)
        with torch.inference_mode():
            if methods()[name].uses_gradients:
                with pytest.raises(XAIError, match="needs gradients"):
                    cam(image_batch(1, 32, 64))
            else:
                assert cam(image_batch(1, 32, 64)).shape == (1, 5, 32, 64)


# Methods whose perturbations depend on where the photograph is (occlusion's patches, RISE's masks, the
# baselines, the superpixels) differ with a valid mask by design; the others must not.
# RefineCAM min-maxes each layer's map over the photograph V before their product: it differs by design too.
REGION_ONLY = [n for n in METHODS if methods()[n].family in ("cam", "uncertainty") and n != "refinecam"]


@pytest.mark.parametrize("name", REGION_ONLY)
def test_valid_mask_keeps_padding_out_of_every_region(fpn, name):
    x = image_batch(1, 32, 64)
    valid = torch.zeros(1, 32, 64, dtype=torch.bool)
    valid[:, :, :40] = True
    cam = make(name, fpn, region="all")
    ref = make(name, fpn, score=lambda out: torch.softmax(out, 1)[:, :, :, :40].sum((2, 3)))
    maps = cam(x, valid=valid)
    ref(x)
    assert ref.last is not None
    # the same attribution, and the one normalisation: min-max over the photograph's pixels, 0 on padding
    assert torch.allclose(maps, minmax(ref.last.raw, valid[:, None]), atol=1e-4)
    assert not maps[..., 40:].any() and set(maps[..., :40].amax((-2, -1)).flatten().tolist()) <= {0.0, 1.0}


class Fixed(BaseCAM):
    """A method whose weights are given: for testing the one combine path."""

    def __init__(self, model, w):
        super().__init__(model, target_layer="features.1", region="all")
        self.w = w

    def weights(self, fwd: Forward) -> torch.Tensor:
        return self.w


def _linear():
    from tests.linear_head import LinearHead

    return LinearHead(channels=2, classes=3).eval()


def test_channel_and_element_wise_weights_combine_as_the_formula_says():
    model = _linear()
    x = image_batch(1, 8, 10)
    with torch.no_grad():
        A = model.features(x)
    w = torch.tensor([[[1.0, -1.0, 0.5], [2.0, 0.0, -0.5]]])  # N×K×C'
    maps = Fixed(model, w)(x)
    for c in range(3):
        L = torch.relu(w[0, 0, c] * A[0, 0] + w[0, 1, c] * A[0, 1])
        assert torch.allclose(maps[0, c], minmax(L), atol=1e-6)
    # the same weights spread over every cell give the same maps (N×K×h×w×C')
    wide = w[:, :, None, None, :].expand(1, 2, 8, 10, 3).contiguous()
    assert torch.allclose(Fixed(model, wide)(x), maps, atol=1e-6)
    with pytest.raises(XAIError, match="N×K×C' or N×K×h×w×C'"):
        Fixed(model, torch.ones(1, 2))(x)


class _Bar:
    """A stand-in for tqdm that records how a sweep uses it."""

    made: ClassVar[list[_Bar]] = []

    def __init__(self, **kw: Any) -> None:
        self.kw, self.closed = kw, 0
        self.updates: list[int] = []
        _Bar.made.append(self)

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed += 1


class _FailsAfter(torch.nn.Module):
    """Runs `chunks` forwards of several images, then every one fails (not an out-of-memory: the sweep
    stops); more than `limit` images run out of memory."""

    def __init__(self, inner: torch.nn.Module, chunks: int, limit: int = 10**9) -> None:
        super().__init__()
        self.inner, self.chunks, self.limit = inner, chunks, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise MemoryError("injected: out of memory")
        if x.shape[0] > 1:
            self.chunks -= 1
            if self.chunks < 0:
                raise RuntimeError("injected")
        return self.inner(x)


SWEEPS: dict[str, tuple[dict[str, Any], str]] = {  # the methods whose sweeps show a bar: (options, the bar's unit)
    "ablationcam": ({"target_layer": "inner." + LAYER}, "channel"),
    "scorecam": (
        {
            "target_layer": "inner." + LAYER,
            "max_activation_maps": 8,
            "precision": "fp32",
            "memory_format": "contiguous",
        },
        "map",
    ),
    "occlusion": ({"patch_size": 16}, "image"),
    "rise": ({"num_masks": 24, "cell_size": 16}, "image"),
}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_a_sweep_shows_one_bar_that_counts_every_image_once_and_always_closes(fpn, name, monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    options, unit = SWEEPS[name]
    cls = methods()[name].cls
    label = methods()[name].label
    _Bar.made = []
    cls(_FailsAfter(fpn, 10**9), **options, batch_size=7)(image_batch(1, 32, 64))
    assert _Bar.made == []  # progress is off by default

    model = _FailsAfter(fpn, 10**9, limit=5)  # chunks of 7 run out of memory: halved to 3, counted once
    cls(model, **options, batch_size=7, progress=True)(image_batch(2, 32, 64))
    (bar,) = _Bar.made
    total = bar.kw["total"]
    assert bar.kw == {"total": total, "desc": f"{label} sweep", "unit": unit, "leave": False}
    assert total > 3 and sum(bar.updates) == total and max(bar.updates) == 3 and bar.closed == 1

    _Bar.made = []
    with pytest.raises(RuntimeError, match="injected"):  # a failing sweep closes its bar too
        cls(_FailsAfter(fpn, 2), **options, batch_size=2, progress=True)(image_batch(1, 32, 64))
    (bar,) = _Bar.made
    assert bar.closed == 1 and bar.updates == [2, 2] and bar.kw["total"] > 4


def test_attribution_gives_every_class_probability(fpn, sigmoid_fpn):
    """probabilities: N×C×H×W float32, the softmax of the logits (summing to 1 over classes) or a sigmoid
    head's own outputs; confidence is their maximum, prediction their argmax; sample(i) slices them."""
    x = image_batch(2, 32, 64)
    result = make("gradcam", fpn).explain(x, classes=[1, 3])
    p = result.probabilities
    assert p is not None and result.confidence is not None and result.prediction is not None
    assert p.shape == (2, 5, 32, 64) and p.dtype == torch.float32
    torch.testing.assert_close(p.sum(1), torch.ones(2, 32, 64))
    torch.testing.assert_close(p.amax(1), result.confidence, rtol=0, atol=0)
    assert torch.equal(p.argmax(1), result.prediction)
    with torch.no_grad():
        torch.testing.assert_close(p, torch.softmax(fpn(x), 1))
    one = result.sample(1).probabilities
    assert one is not None and torch.equal(one, p[1:2])
    head = make("gradcam", sigmoid_fpn).explain(x)
    with torch.no_grad():
        torch.testing.assert_close(head.probabilities, sigmoid_fpn(x))  # the head's own probabilities
