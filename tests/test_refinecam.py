"""RefineCAM against the product of the channel-by-channel references of its base CAM (tests/reference.py),
its default layers, and its options from the CLI and xai.explain."""

from __future__ import annotations

import json

import pytest
import torch

import xai
from tests.explainer_reference import refinecam_reference
from tests.helpers import ConvNet, gt_batch, image_batch, run_args, tiny_fpn
from xai.errors import XAIError
from xai.methods.refinecam import PYRAMID, default_layers

CASES = [  # base, layers (None: the default, the FPN's pyramid), score, region, head activation
    ("gradcam", None, "prob", "all", None),
    ("gradcampp", ("encoder.layer2", "encoder.layer4"), "logit", "all", None),  # post-ReLU: α well-conditioned
    ("hirescam", ("decoder.p4", "decoder.p2"), "prob", "pred", "sigmoid"),
]


@pytest.mark.parametrize("base,layers,score,region,activation", CASES)
def test_refinecam_matches_the_product_of_its_layers_references(base, layers, score, region, activation):
    """Every class of 2 images from one call; 3 image-class pairs against the reference, to 1e-5."""
    model = tiny_fpn(activation=activation, seed=2)
    x, gt = image_batch(2, 64, 32, seed=3), gt_batch(2, 64, 32, seed=4)
    cam = xai.RefineCAM(model, refine_base=base, refine_layers=layers, score=score, region=region)
    maps = cam(x, gt=gt)
    assert cam.options.refine_layers == (layers or PYRAMID)
    assert cam.last.stats["forwards"] == len(cam.options.refine_layers)
    nonzero = 0
    for n, c in ((0, 0), (1, 1), (1, 2)):
        ref = refinecam_reference(
            model,
            x[n : n + 1],
            cam.options.refine_layers,
            c,
            base,
            score=score,
            region=region,
            gt=gt[n : n + 1],
            has_act=activation is not None,
        )
        assert torch.allclose(maps[n, c], ref, atol=1e-5), (n, c, (maps[n, c] - ref).abs().max())
        nonzero += int(ref.max() == 1)
    assert nonzero == 3  # none of the three maps is all zeros (a product of four maps often is)


def test_one_layer_is_its_base_cam():
    model, x = tiny_fpn(seed=2), image_batch(2, 64, 32, seed=3)
    one = xai.RefineCAM(model, refine_layers=("encoder.layer3",))(x)
    assert torch.allclose(one, xai.GradCAM(model, target_layer="encoder.layer3")(x), atol=1e-6)


def test_default_layers_and_refusals():
    import segmentation_models_pytorch as smp

    assert default_layers(tiny_fpn()) == PYRAMID
    unet = smp.Unet("resnet18", encoder_weights=None, classes=3)
    assert default_layers(unet) == ("encoder.layer1", "encoder.layer2", "encoder.layer3", "encoder.layer4")
    plain = ConvNet(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 3, 1)))
    with pytest.raises(XAIError, match=r"name them with (--)?refine_layers"):
        xai.RefineCAM(plain)
    with pytest.raises(XAIError, match=r"unknown target layer 'decoder\.p9'"):
        xai.RefineCAM(tiny_fpn(), refine_layers=("decoder.p5", "decoder.p9"))
    with pytest.raises(XAIError, match=r"unknown (--)?refine_base 'scorecam'"):
        xai.RefineCAM(tiny_fpn(), refine_base="scorecam")


def test_refinecam_and_fullgrad_from_the_cli_and_from_python(tiny_run):
    from xai.cli import main

    base, data, ckpt = tiny_run
    out = base / "refine_fullgrad"
    extra = ("--methods", "refinecam,fullgrad", "--refine_layers", "decoder.p4", "decoder.p3", "--refine_base")
    assert main("gradcam", run_args(ckpt, data, out, *extra, "gradcampp", "--num_samples", "1")) == 0
    for name in ("refinecam", "fullgrad"):
        assert len(list((out / f"{name}_maps").glob(f"sample0_{name}_*.png"))) == 5
    manifest = json.loads((out / "manifest.json").read_text())
    options = manifest["engines"]["refinecam"]
    assert options["refine_layers"] == ["decoder.p4", "decoder.p3"] and options["refine_base"] == "gradcampp"
    photo = sorted((data / "images").iterdir())[0]
    result = xai.explain(ckpt, photo, methods=("refinecam", "fullgrad"), refine_base="layercam")
    assert set(result.maps) == {"refinecam", "fullgrad"}
    assert result.maps["fullgrad"].shape[0] == 5 and float(result.maps["refinecam"].max()) > 0.5  # on the photograph
