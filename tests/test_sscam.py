"""SS-CAM and IS-CAM (Score-CAM's engine with N copies of each mask) against the slow reference written
from their formulas; Score-CAM at N = 1, σ = 0; the noise seeded and independent of the batches and of the
other images; both from the command line and from xai.explain."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

import xai
from tests.helpers import CountingModel, gt_batch, image_batch, tiny_fpn, top_variance_channels
from tests.reference import iscam_copies, scorecam_reference, sscam_copies
from xai.cli import main
from xai.mapfile import load_maps

SSCAM = functools.partial(xai.SSCAM, memory_format="contiguous", precision="fp32")
ISCAM = functools.partial(xai.ISCAM, memory_format="contiguous", precision="fp32")
ScoreCAM = functools.partial(xai.ScoreCAM, memory_format="contiguous", precision="fp32")
LAYER = "encoder.layer1"  # 64 channels at H/4; 6 or 8 kept
TOL = 1e-4  # as test_scorecam: fp32 region sums of logits (hundreds) against the float64 reference
SIZE = (32, 64)

SS = {"noise_samples": 3, "noise_stdev": 0.5, "seed": 4}, sscam_copies(3, 0.5, 4, SIZE)
SS_DEFAULT_SEED = {"noise_samples": 4, "noise_stdev": 2.0}, sscam_copies(4, 2.0, 0, SIZE)
SS_SMALL = {"noise_samples": 2, "noise_stdev": 0.3, "seed": 1}, sscam_copies(2, 0.3, 1, SIZE)
IS_LINEAR = {"integration_steps": 3}, iscam_copies(3)
IS_CUMULATIVE = {"integration_steps": 4, "integration_path": "cumulative"}, iscam_copies(4, "cumulative")
CASES = [
    # method, (its options, the reference's masks), score, region, baseline, weights
    ("sscam", SS, "prob", "pred", "zero", "raw"),
    ("sscam", SS_DEFAULT_SEED, "logit", "gt", "none", "centred"),
    ("sscam", SS_SMALL, "prob", "all", "zero", "softmax"),
    ("iscam", IS_LINEAR, "prob", "pred", "zero", "raw"),
    ("iscam", IS_CUMULATIVE, "prob", "gt", "zero", "centred"),
    ("iscam", ({"integration_steps": 2}, iscam_copies(2)), "logit", "pred", "none", "softmax"),
]


@pytest.mark.parametrize("method,variant,score,region,baseline,weights", CASES)
def test_matches_the_formula(method, variant, score, region, baseline, weights):
    options, copies = variant
    model = tiny_fpn(seed=3)
    x, gt = image_batch(1, *SIZE, seed=5), gt_batch(1, *SIZE, seed=6)  # more images: test_independent_of_...
    cls = SSCAM if method == "sscam" else ISCAM
    common = {"score": score, "region": region, "baseline": baseline, "weights": weights}
    cam = cls(model, target_layer=LAYER, batch_size=5, max_activation_maps=6, **common, **options)
    maps = cam(x, classes=[0, 3], gt=gt)
    assert cam.last is not None and cam.last.stats["forwards"] == sum(cam.last.stats["kept_channels"]) * len(
        copies(torch.zeros(1))
    )
    channels = top_variance_channels(model, x, LAYER, 6)
    for j, c in enumerate([0, 3]):
        ref, ref_raw = scorecam_reference(model, x, LAYER, c, gt=gt, channels=channels, copies=copies, **common)
        assert torch.allclose(maps[0, j], ref, atol=TOL), (c, (maps[0, j] - ref).abs().max())
        assert torch.allclose(cam.last.raw[0, j], ref_raw, atol=TOL * max(1.0, ref_raw.abs().max().item()))


@pytest.mark.parametrize("weights,baseline", [("centred", "zero"), ("raw", "zero"), ("softmax", "none")])
def test_one_copy_without_noise_and_one_scale_are_score_cam(weights, baseline):
    model, x = tiny_fpn(seed=3), image_batch(2, *SIZE, seed=5)
    common = {"target_layer": LAYER, "max_activation_maps": 8, "weights": weights, "baseline": baseline}
    score_cam = ScoreCAM(model, **common)(x)
    same = [
        SSCAM(model, noise_samples=1, noise_stdev=0.0, **common)(x),
        SSCAM(model, noise_samples=3, noise_stdev=0.0, **common)(x),  # three equal copies
        ISCAM(model, integration_steps=1, **common)(x),
        ISCAM(model, integration_steps=1, integration_path="cumulative", **common)(x),
    ]
    for maps in same:
        assert torch.allclose(maps, score_cam, atol=1e-6), (maps - score_cam).abs().max()
    assert not torch.allclose(SSCAM(model, noise_samples=2, noise_stdev=0.5, **common)(x), score_cam, atol=1e-3)
    assert not torch.allclose(ISCAM(model, integration_steps=3, **common)(x), score_cam, atol=1e-3)


@pytest.mark.parametrize("cls,options", [(SSCAM, {"noise_samples": 3}), (ISCAM, {"integration_steps": 3})])
def test_independent_of_batch_size_and_of_other_images(cls, options):
    """Chunks that split a channel's copies, and an image alone, give the same maps."""
    model, x = tiny_fpn(seed=2), image_batch(3, *SIZE, seed=2)
    results = [cls(model, target_layer=LAYER, batch_size=b, max_activation_maps=6, **options)(x) for b in (1, 4, 64)]
    for r in results[1:]:
        assert torch.allclose(r, results[0], atol=1e-4)  # fp32 convolutions of other batch sizes
    alone = cls(model, target_layer=LAYER, batch_size=5, max_activation_maps=6, **options)(x[1:2])
    assert torch.allclose(alone[0], results[0][1], atol=1e-4)


def test_the_noise_is_seeded():
    model, x = tiny_fpn(seed=2), image_batch(1, *SIZE, seed=2)
    a, b, c = (
        SSCAM(model, target_layer=LAYER, max_activation_maps=6, noise_samples=2, noise_stdev=1.0, seed=s)(x)
        for s in (7, 7, 8)
    )
    assert torch.equal(a, b) and not torch.allclose(a, c, atol=1e-3)
    state = torch.get_rng_state()
    SSCAM(model, target_layer=LAYER, max_activation_maps=6, noise_samples=2)(x)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone


def test_one_sweep_of_n_copies_serves_every_class():
    model = CountingModel(tiny_fpn(seed=1))
    x = image_batch(2, *SIZE)
    cam = ISCAM(model, target_layer="inner." + LAYER, batch_size=7, max_activation_maps=5, integration_steps=3)
    cam(x)  # all 5 classes
    assert cam.last is not None
    kept = sum(cam.last.stats["kept_channels"])
    assert sum(model.batches[2:]) == 3 * kept == cam.last.stats["forwards"] and max(model.batches[2:]) <= 7


FAST = ["--max_activation_maps", "4", "--batch_size", "4", "--noise_samples", "2", "--integration_steps", "2"]


def test_cli_and_explain_give_the_same_maps(tiny_run, tmp_path):
    """Both methods from the command line (their flags, folders, manifest, gallery) and from xai.explain: the
    same maps (to one float16 step, the stored maps' rounding)."""
    _base, data, ckpt = tiny_run
    photo = sorted((data / "images").iterdir())[0]
    out = tmp_path / "variants"
    args = ["--model_path", str(ckpt), "--images", str(photo), "--output_dir", str(out), "--no_progress"]
    assert main("scorecam", [*args, "--workers", "0", "--methods", "sscam,iscam", "--noise_stdev", "0.5", *FAST]) == 0
    for name in ("sscam", "iscam"):
        assert len(list((out / f"{name}_maps").glob(f"*_{name}_*.png"))) == 5, name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["methods"]["sscam"]["label"] == "SS-CAM" and manifest["methods"]["iscam"]["label"] == "IS-CAM"
    assert manifest["engines"]["sscam"]["noise_samples"] == 2 and manifest["engines"]["sscam"]["noise_stdev"] == 0.5
    assert manifest["engines"]["iscam"]["integration_steps"] == 2
    assert manifest["engines"]["iscam"]["integration_path"] == "linear"
    page = (out / "gallery.html").read_text()
    assert "SS-CAM" in page and "IS-CAM" in page
    stored = load_maps(out / "raw_maps" / "sample0.npz")
    result = xai.explain(
        ckpt, photo, methods=("sscam", "iscam"), max_activation_maps=4, batch_size=4, noise_samples=2,
        noise_stdev=0.5, integration_steps=2,
    )  # fmt: skip
    assert isinstance(result, xai.Explanation)
    for name in ("sscam", "iscam"):
        np.testing.assert_allclose(result.maps[name], stored.on_photograph(name), rtol=0, atol=2**-11)
        assert result.maps[name].max() > 0.9


def test_no_varying_channel_costs_no_forward():
    """All-zero activations: zero maps from the input's and the baseline's forwards alone, as Score-CAM's."""
    from tests.test_scorecam import _Named_zero

    for cam in (SSCAM, ISCAM):
        model = CountingModel(_Named_zero())
        maps = cam(model, target_layer="inner.features.1")(image_batch(1, 16, 16))
        assert torch.equal(maps, torch.zeros_like(maps)) and model.batches == [1, 1]
