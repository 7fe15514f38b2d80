"""ScoreCAM against the slow reference, and its behaviour: batch-size independence, one sweep for all
classes, bounded masked inputs, channel selection, state restored, hooks removed, edge cases."""

from __future__ import annotations

import functools

import pytest
import torch

import xai
from tests.helpers import ConvNet, CountingModel, gt_batch, image_batch, tiny_convnet, tiny_fpn, top_variance_channels
from tests.reference import scorecam_reference
from xai.errors import OutOfMemory, XAIError

# Numbers are compared with the reference in the default (contiguous) layout, where fp32 convolutions
# do not depend on the batch; test_memory_formats_agree checks the layouts "auto" may pick.
ScoreCAM = functools.partial(xai.ScoreCAM, memory_format="contiguous")
LAYER = "encoder.layer1"  # 64 channels at H/4: small enough for the per-class, per-channel reference
TOL = 1e-4

GRID = [
    # score, region, baseline, weights, activation
    ("prob", "pred", "zero", "raw", None),
    ("prob", "all", "zero", "raw", None),
    ("logit", "pred", "none", "raw", None),
    ("prob", "gt", "none", "softmax", None),
    ("prob", "tp", "zero", "raw", None),
    ("prob", "fp", "zero", "softmax", None),
    ("logit", "fn", "zero", "raw", None),
    ("prob", "pred", "zero", "raw", "sigmoid"),
    ("logit", "gt", "zero", "raw", "sigmoid"),
    ("prob", "fn", "none", "softmax", "sigmoid"),
    ("prob", "pred", "zero", "centred", None),
    ("logit", "gt", "none", "centred", "sigmoid"),
]


@pytest.mark.parametrize("score,region,baseline,weights,activation", GRID)
def test_matches_reference(score, region, baseline, weights, activation):
    """Every option against the reference, on the 24 highest-variance channels (the reference picks them itself)."""
    model = tiny_fpn(activation=activation, seed=3)
    x, gt = image_batch(2, 32, 64, seed=5), gt_batch(2, 32, 64, seed=6)
    cam = ScoreCAM(
        model,
        target_layer=LAYER,
        batch_size=20,
        max_activation_maps=24,
        score=score,
        region=region,
        baseline=baseline,
        weights=weights,
        precision="fp32",
    )
    classes = [0, 3]
    maps = cam(x, classes=classes, gt=gt)
    assert maps.shape == (2, 2, 32, 64) and maps.dtype == torch.float32
    for n in range(2):
        channels = top_variance_channels(model, x[n : n + 1], LAYER, 24)
        for j, c in enumerate(classes):
            ref, ref_raw = scorecam_reference(
                model,
                x[n : n + 1],
                LAYER,
                c,
                score=score,
                region=region,
                baseline=baseline,
                weights=weights,
                gt=gt[n : n + 1],
                has_act=activation is not None,
                channels=channels,
            )
            assert torch.allclose(maps[n, j], ref, atol=TOL), (n, c, (maps[n, j] - ref).abs().max())
            assert torch.allclose(cam.last.raw[n, j], ref_raw, atol=TOL * max(1.0, ref_raw.abs().max().item()))


def test_matches_reference_on_every_channel(fpn):
    x = image_batch(1, 32, 64, seed=9)
    maps = ScoreCAM(fpn, target_layer=LAYER, batch_size=32, precision="fp32")(x, classes=[1, 2])
    for j, c in enumerate([1, 2]):
        ref, _ = scorecam_reference(fpn, x, LAYER, c)
        assert torch.allclose(maps[0, j], ref, atol=TOL), (c, (maps[0, j] - ref).abs().max())


def test_independent_of_batch_size_and_of_other_images(fpn):
    x = image_batch(3, 32, 64, seed=2)
    results = [
        ScoreCAM(fpn, target_layer=LAYER, batch_size=b, max_activation_maps=16, precision="fp32")(x) for b in (1, 7, 64)
    ]
    for r in results[1:]:
        assert torch.allclose(r, results[0], atol=TOL)
    alone = ScoreCAM(fpn, target_layer=LAYER, batch_size=16, max_activation_maps=16, precision="fp32")(x[1:2])
    assert torch.allclose(alone[0], results[0][1], atol=TOL)


def test_one_sweep_serves_every_class_and_chunks_are_bounded(fpn):
    model = CountingModel(fpn)
    x = image_batch(2, 32, 64)
    cam = ScoreCAM(model, target_layer="inner." + LAYER, batch_size=10, precision="fp32")
    cam(x)  # all 5 classes
    kept = sum(cam.last.stats["kept_channels"])
    # 1 forward of x, 1 of the zero baseline, then ceil(kept / 10) masked batches: not 5 sweeps
    assert model.batches[0] == 2 and model.batches[1] == 1
    assert sum(model.batches[2:]) == kept == cam.last.stats["forwards"]
    assert max(model.batches[2:]) <= 10
    assert kept <= 2 * 64


def test_max_activation_maps_keeps_highest_variance_channels(fpn):
    x = image_batch(1, 32, 64, seed=4)
    cam = ScoreCAM(fpn, target_layer=LAYER, max_activation_maps=8, precision="fp32")
    maps = cam(x, classes=[1])
    top = set(top_variance_channels(fpn, x, LAYER, 8))
    used = set(cam.last.weights[0, :, 0].nonzero().flatten().tolist())
    assert used <= top and len(used) >= 6
    ref, _ = scorecam_reference(fpn, x, LAYER, 1, channels=sorted(top))
    assert torch.allclose(maps[0, 0], ref, atol=TOL)


def test_energy_selection_keeps_the_channels_of_largest_mean_square(fpn):
    x = image_batch(1, 32, 64, seed=4)
    cam = ScoreCAM(fpn, target_layer=LAYER, max_activation_maps=8, channel_selection="energy", precision="fp32")
    cam(x, classes=[1])
    acts: dict[str, torch.Tensor] = {}
    h = dict(fpn.named_modules())[LAYER].register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    with torch.no_grad():
        fpn(x)
    h.remove()
    energy = acts["a"][0].flatten(1).square().mean(1)
    top = set(energy.argsort(descending=True)[:8].tolist())
    assert cam.last is not None
    used = set(cam.last.weights[0, :, 0].nonzero().flatten().tolist())
    assert used <= top and len(used) >= 6
    assert top != set(top_variance_channels(fpn, x, LAYER, 8))  # a different criterion on this input


def test_random_selection_is_seeded(fpn):
    x = image_batch(1, 32, 64)
    a = ScoreCAM(fpn, target_layer=LAYER, max_activation_maps=5, channel_selection="random", seed=7)
    b = ScoreCAM(fpn, target_layer=LAYER, max_activation_maps=5, channel_selection="random", seed=7)
    c = ScoreCAM(fpn, target_layer=LAYER, max_activation_maps=5, channel_selection="random", seed=8)
    a(x), b(x), c(x)
    nz = lambda cam: cam.last.weights[0, :, 1].nonzero().flatten().tolist()  # noqa: E731
    assert nz(a) == nz(b) and nz(a) != nz(c)


@pytest.mark.parametrize("precision", ["bf16"])  # converts the model to channels_last (fp32: test_methods_base)
def test_state_restored_and_hooks_removed_even_on_error(fpn, precision):
    fpn.train()
    fpn.encoder.layer1.eval()  # mixed per-module modes must come back as they were
    fpn.segmentation_head.to(memory_format=torch.channels_last)  # and so must mixed memory formats
    modes = {n: m.training for n, m in fpn.named_modules()}
    formats = {n: p.is_contiguous() for n, p in fpn.named_parameters()}

    def boom(module, inputs, output):
        raise RuntimeError("injected")

    fpn.decoder.register_forward_hook(boom)  # fails in the middle of the first forward pass
    cam = ScoreCAM(fpn, target_layer=LAYER, precision=precision)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="injected"):
        cam(image_batch(1, 32, 64))
    fpn.decoder._forward_hooks.clear()
    assert {n: m.training for n, m in fpn.named_modules()} == modes
    assert {n: p.is_contiguous() for n, p in fpn.named_parameters()} == formats
    assert not any(p.is_inference() for p in fpn.parameters())
    assert torch.is_grad_enabled()
    for m in fpn.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_custom_score_callable(fpn):
    x = image_batch(2, 32, 64)
    coi = lambda out: out[:, 2, 5:10, 5:10].sum((1, 2)).unsqueeze(1)  # noqa: E731
    cam = ScoreCAM(fpn, target_layer=LAYER, score=coi, precision="fp32", baseline="none")
    maps = cam(x)
    assert maps.shape == (2, 1, 32, 64)
    # same as the reference with logit scoring of class 2 over a box region
    box = torch.zeros(32, 64)
    box[5:10, 5:10] = 1
    fixed = ScoreCAM(
        fpn, target_layer=LAYER, score=lambda o: (o[:, 2] * box).sum((1, 2))[:, None], precision="fp32", baseline="none"
    )
    assert torch.allclose(fixed(x), maps, atol=1e-6)


@pytest.mark.parametrize("h,w", [(17, 17), (21, 38), (40, 9)])
def test_odd_and_non_square_sizes(h, w):
    model = tiny_convnet()
    x = image_batch(1, h, w)
    maps = ScoreCAM(model, target_layer="features.3", precision="fp32", batch_size=5)(x)
    assert maps.shape == (1, 3, h, w) and torch.isfinite(maps).all()
    for c in range(3):
        ref, _ = scorecam_reference(model, x, "features.3", c)
        assert torch.allclose(maps[0, c], ref, atol=TOL)


def test_non_square_smp_input(fpn):
    x = image_batch(1, 64, 32)
    maps = ScoreCAM(fpn, target_layer=LAYER, precision="fp32", max_activation_maps=12)(x, classes=[0])
    assert maps.shape == (1, 1, 64, 32)
    ref, _ = scorecam_reference(fpn, x, LAYER, 0, channels=top_variance_channels(fpn, x, LAYER, 12))
    assert torch.allclose(maps[0, 0], ref, atol=TOL)


def test_constant_image_gives_zero_maps_not_nan(fpn):
    x = torch.full((1, 3, 32, 64), 0.3)
    maps = ScoreCAM(fpn, target_layer=LAYER, precision="fp32")(x)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_all_zero_activations_cost_no_forward_and_give_zeros():
    model = CountingModel(_Named_zero())
    maps = ScoreCAM(model, target_layer="inner.features.1", precision="fp32")(image_batch(1, 16, 16))
    assert torch.equal(maps, torch.zeros_like(maps))
    assert model.batches == [1, 1]  # the input and the baseline, no masked pass


def _Named_zero():
    net = ConvNet(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)))
    conv = net.features[0]
    assert isinstance(conv, torch.nn.Conv2d) and conv.bias is not None
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(-1.0)  # ReLU output is exactly 0 everywhere
    return net


@pytest.mark.parametrize("weights", ["raw", "softmax", "centred"])
def test_class_absent_from_region_gives_zero_map_and_flag(fpn, weights):
    x = image_batch(1, 32, 64)
    absent = 4
    with torch.no_grad():
        fpn.segmentation_head[0].bias[absent] = -1e4  # class 4 is never predicted
        pred = fpn(x).argmax(1)
    assert not (pred == absent).any()
    cam = ScoreCAM(fpn, target_layer=LAYER, precision="fp32", weights=weights, max_activation_maps=16)
    maps = cam(x)
    assert torch.equal(maps[0, absent], torch.zeros_like(maps[0, absent]))
    assert bool(cam.last.empty[0, absent]) and not bool(cam.last.empty[0, int(pred[0, 0, 0])])


def test_one_channel_target_layer():
    torch.manual_seed(0)
    net = ConvNet(torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(1, 3, 1)))
    x = image_batch(1, 16, 24)
    maps = ScoreCAM(net, target_layer="features.0", precision="fp32", region="all")(x)
    for c in range(3):
        ref, _ = scorecam_reference(net, x, "features.0", c, region="all")
        assert torch.allclose(maps[0, c], ref, atol=TOL)


def test_sigmoid_model_scores_its_own_output(sigmoid_fpn):
    x = image_batch(1, 32, 64)
    cam = ScoreCAM(sigmoid_fpn, target_layer=LAYER, precision="fp32")
    assert cam.scored.probabilities
    ref, _ = scorecam_reference(sigmoid_fpn, x, LAYER, 2, has_act=True)
    assert torch.allclose(cam(x, classes=[2])[0, 0], ref, atol=TOL)


def test_bf16_maps_correlate_with_fp32(fpn):
    x = image_batch(1, 32, 64)
    exact = ScoreCAM(fpn, target_layer=LAYER, precision="fp32")(x)
    fast = ScoreCAM(fpn, target_layer=LAYER, precision="bf16")(x)
    for c in range(5):
        a, b = exact[0, c].flatten(), fast[0, c].flatten()
        if a.std() > 0:
            assert b.std() > 0 and torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.95


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"precision": "fp8"}, "unknown precision"),
        ({"batch_size": 0}, "batch_size"),
        ({"weights": "max"}, "unknown weights"),
    ],
)
def test_bad_options_are_refused_in_one_line(fpn, kwargs, match):
    with pytest.raises(XAIError, match=match):
        ScoreCAM(fpn, **kwargs)


def test_options_dataclass_is_what_resume_and_manifest_see(fpn):
    cam = xai.ScoreCAM(fpn, target_layer=LAYER, batch_size=7, max_activation_maps=5, precision="auto")
    from xai.precision import resolve_precision

    full = cam.options.describe()
    assert full == {
        "target_layer": LAYER,
        "score": "prob",
        "score_reduction": "sum",
        "region": "pred",
        "contrast": None,
        "boundary_width": 2,
        "junction": None,
        "progress": False,
        "eigen_smooth": False,
        "aug_smooth": False,
        "baseline": "zero",
        "weights": "centred",
        "max_activation_maps": 5,
        "channel_selection": "variance",
        "seed": 0,
        "precision": resolve_precision("auto", torch.device("cpu")),
        "batch_size": 7,
        "compile": False,
        "cudnn_benchmark": False,
        "memory_format": "auto",
    }
    assert full["precision"] in ("fp32", "bf16")  # "auto" is resolved for the device, never stored
    for unkeyed in ("batch_size", "compile", "cudnn_benchmark", "memory_format"):
        assert unkeyed not in cam.options.result_key()


def test_memory_formats_agree_and_auto_measures_once(fpn):
    """channels_last changes fp32 summation order only: maps agree to 5e-4, Pearson ≥ 0.99999."""
    from xai.precision import _LAYOUTS

    x = image_batch(2, 32, 64, seed=2)
    plain = ScoreCAM(fpn, target_layer=LAYER, precision="fp32")(x)
    for fmt in ("channels_last", "auto"):
        cam = xai.ScoreCAM(fpn, target_layer=LAYER, precision="fp32", memory_format=fmt)
        maps = cam(x)
        assert (maps - plain).abs().max() <= 5e-4
        for n in range(2):
            for c in range(5):
                if plain[n, c].std() > 0:
                    assert torch.corrcoef(torch.stack([plain[n, c].flatten(), maps[n, c].flatten()]))[0, 1] >= 0.99999
    assert list(_LAYOUTS[fpn]) == [("cpu", "fp32", (3, 32, 64))]  # measured once for this model and size
    assert cam.last.stats["channels_last"] == _LAYOUTS[fpn][("cpu", "fp32", (3, 32, 64))]
    assert all(p.is_contiguous() for p in fpn.parameters())  # the model's layout is restored


class RunsOutOfMemory(torch.nn.Module):
    """Raises like CUDA (or the CPU's MemoryError) when a forward pass holds more than `limit` images."""

    def __init__(self, inner, limit, error):
        super().__init__()
        self.inner, self.limit, self.error, self.batches = inner, limit, error, []

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise self.error("injected: out of memory")
        self.batches.append(x.shape[0])
        return self.inner(x)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError])
def test_out_of_memory_halves_the_batch_and_says_so_once(fpn, error, caplog):
    x = image_batch(2, 32, 64, seed=3)
    expected = ScoreCAM(fpn, target_layer=LAYER, batch_size=32, max_activation_maps=20, precision="fp32")(x)
    model = RunsOutOfMemory(fpn, limit=5, error=error)
    cam = ScoreCAM(model, target_layer="inner." + LAYER, batch_size=32, max_activation_maps=20, precision="fp32")
    with caplog.at_level("WARNING", logger="xai"):
        maps = cam(x)
        cam(x)  # the next call starts at the lowered batch: no new retries, no new warning
    assert torch.allclose(maps, expected, atol=TOL)
    assert max(model.batches[2:]) == 4  # 32 -> 16 -> 8 -> 4
    warnings = [r for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(warnings) == 1 and "continuing with 16, halved again if needed" in warnings[0].getMessage()


def test_out_of_memory_at_one_image_is_one_line(fpn):
    class FailsAfterTwo(torch.nn.Module):
        """The input and the baseline pass; every masked forward runs out of memory."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 2:
                raise MemoryError("injected")
            return self.inner(x)

    cam = ScoreCAM(FailsAfterTwo(fpn), target_layer="inner." + LAYER, batch_size=4, max_activation_maps=4)
    with pytest.raises(OutOfMemory, match=r"out of memory in Score-CAM sweep on cpu even with 1 image\(s\)") as err:
        cam(image_batch(1, 32, 64))
    assert err.value.batch == 1 and "--img_size" in err.value.cli_message() and "--" not in str(err.value)


def test_centred_weights_make_the_baseline_irrelevant(fpn):
    """w_kc − mean_k w_kc: subtracting s_c(f(0)) from every channel shifts all w_kc alike and cancels."""
    x = image_batch(1, 32, 64, seed=2)
    maps = {
        b: ScoreCAM(fpn, target_layer=LAYER, precision="fp32", weights="centred", baseline=b, max_activation_maps=24)(x)
        for b in ("zero", "none")
    }
    assert torch.allclose(maps["zero"], maps["none"], atol=TOL)
    raw = ScoreCAM(fpn, target_layer=LAYER, precision="fp32", baseline="zero", max_activation_maps=24)
    raw(x)
    assert raw.last is not None
    background = int(raw.last.prediction[0].flatten().mode().values)
    assert maps["zero"][0, background].max() == 1.0  # not blank where the zero baseline can blank raw weights
