"""Every CAM's eigen_smooth and aug_smooth (xai.methods.smoothing) against references written from their
definitions (tests/explainer_reference.py); both off, every CAM's maps are the numbers they were before
the options existed; the options reach the command line and xai.explain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from tests.explainer_reference import (
    _positive_minmax,
    _up_to,
    ablation_aug_reference,
    ablation_weights_reference,
    aug_smooth_reference,
    eigen_smooth_reference,
    gradcam_aug_reference,
    view_gradcam_reference,
)
from tests.helpers import image_batch, tiny_fpn
from tests.reference import _gradients
from xai import AblationCAM, EigenGradCAM, GradCAM, HiResCAM
from xai.cli import build_parser, run_options
from xai.methods import methods
from xai.methods.cam import BaseCAM

LAYER = "encoder.layer2"  # 4×8 cells of 128 channels at 32×64
# the CAMs over one layer's weighted activations (BaseCAM); RefineCAM combines its base CAM's maps instead
CAMS = [name for name, info in methods().items() if issubclass(info.cls, BaseCAM)]
# pinned before eigen_smooth and aug_smooth existed: (Σ maps, Σ maps ⊙ W) of every CAM's default maps
PINNED = {
    "ablationcam": (5467.467385, 2715.144622),
    "eigencam": (2088.110975, 1033.553736),
    "eigengradcam": (1933.649560, 949.335182),
    "fem": (4945.803692, 2458.235940),
    "gradcam": (2500.070290, 1235.696134),
    "gradcam_elementwise": (3012.817990, 1485.662300),
    "gradcampp": (5927.543526, 2944.719777),
    "hirescam": (2365.934706, 1165.087791),
    "kpcacam": (2334.790737, 1157.251968),
    "layercam": (3012.817990, 1485.662300),
    "scorecam": (2993.279469, 1477.665034),
    "segeigencam": (1939.910534, 952.451161),
    "sscam": (3274.735550, 1623.010113),  # pinned from branch ss-is-cam (cee93a0), before the smoothings
    "iscam": (3003.235561, 1482.118384),
    "shapleycam": (2744.993748, 1356.807550),
    "xgradcam": (4098.363309, 2032.987956),
}
# Score-CAM in one float32 layout: "auto" times both, and the other's sums differ in the last bits
SCORECAM = {"precision": "fp32", "memory_format": "contiguous", "batch_size": 16}


def _kw(name: str) -> dict:
    return SCORECAM if name in ("scorecam", "sscam", "iscam") else {}


@pytest.fixture(scope="module")
def model():
    return tiny_fpn(seed=2)


def test_every_cam_and_only_the_cams_take_both():
    for name, info in methods().items():
        has = {"eigen_smooth", "aug_smooth"} <= set(info.options.names())
        assert has == issubclass(info.cls, BaseCAM), name
        if has:
            defaults = info.options()
            assert defaults.describe()["eigen_smooth"] is False and defaults.describe()["aug_smooth"] is False
            eigen, aug = info.options.spec("eigen"), info.options.spec("aug")
            assert eigen is not None and eigen.name == "eigen_smooth" and aug is not None and aug.name == "aug_smooth"
    assert set(PINNED) == set(CAMS)  # a new CAM gets its pin here


@pytest.mark.parametrize("name", CAMS)
def test_both_off_the_maps_are_the_pinned_numbers(model, name):
    x = image_batch(2, 32, 64, seed=3)
    w = torch.rand(2, 5, 32, 64, generator=torch.Generator().manual_seed(5)).double()
    cls = methods()[name].cls
    for maps in (cls(model, **_kw(name))(x), cls(model, eigen_smooth=False, aug_smooth=False, **_kw(name))(x)):
        got = (float(maps.double().sum()), float((maps.double() * w).sum()))
        np.testing.assert_allclose(got, PINNED[name], rtol=1e-5)  # float32 sums of 1 or 2 threads


@pytest.mark.parametrize("cls,method", [(GradCAM, "gradcam"), (HiResCAM, "hirescam")])
def test_eigen_smooth_is_the_first_component_of_the_weighted_activations(model, cls, method):
    x = image_batch(2, 32, 64, seed=3)
    maps = cls(model, target_layer=LAYER, eigen_smooth=True)(x)
    for n in range(2):
        for c in range(5):
            A, G = _gradients(model, x[n : n + 1], LAYER, c, "prob", "pred", None, False)
            if G.abs().max() == 0:  # an empty region: no score, an all-zero map
                assert maps[n, c].max() == 0
                continue
            weighted = torch.stack([G[k].mean() * A[k] if method == "gradcam" else G[k] * A[k] for k in range(len(A))])
            ref = eigen_smooth_reference(weighted, (32, 64))
            # float32 SVD against numpy's float64: G ⊙ A's small entries leave ~1e-4 (Eigen-Grad-CAM's test: 1e-4)
            assert torch.allclose(maps[n, c], ref, atol=2e-4), (n, c, (maps[n, c] - ref).abs().max())
    if method == "hirescam":  # the projection of G ⊙ A with the same sign rule: Eigen-Grad-CAM's map
        assert torch.allclose(maps, EigenGradCAM(model, target_layer=LAYER)(x), atol=1e-6)


def test_eigen_smooth_of_a_gradient_free_cam(model):
    """Ablation-CAM's measured weights w_k: the projection of w_k A_k."""
    x = image_batch(1, 32, 64, seed=3)
    maps = AblationCAM(model, eigen_smooth=True)(x)
    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    for c in [int(pred.flatten()[0])]:  # one class: the reference runs the model once per channel
        w, A = ablation_weights_reference(model, x, "decoder", c, (pred == c).float())
        ref = eigen_smooth_reference(torch.stack([float(w[k]) * A[k] for k in range(len(A))]), (32, 64))
        assert torch.allclose(maps[0, c], ref, atol=1e-4), (c, (maps[0, c] - ref).abs().max())


@pytest.mark.parametrize("name", ["eigencam", "eigengradcam", "segeigencam", "kpcacam"])
def test_eigen_smooth_leaves_the_principal_component_cams_alone(model, name):
    x = image_batch(1, 32, 64, seed=3)
    cls = methods()[name].cls
    assert torch.equal(cls(model, target_layer=LAYER, eigen_smooth=True)(x), cls(model, target_layer=LAYER)(x))


def test_aug_smooth_is_the_mean_of_the_views_mapped_back(model):
    """Six views (flip × 0.9, 1, 1.1), the region flipped with the image, on a photograph padded on the right."""
    x = image_batch(2, 32, 64, seed=3)
    valid = torch.ones(2, 32, 64, dtype=torch.bool)
    valid[:, :, 52:] = False
    cam = GradCAM(model, target_layer=LAYER, aug_smooth=True)
    maps = cam(x, valid=valid)
    assert cam.last.stats["views"] == 6 and cam.last.stats["forwards"] == 6 and cam.last.stats["backwards"] == 30
    assert cam.last.weights.shape == (2, 128, 5)  # the weights of x itself
    with torch.no_grad():
        pred = model(x).argmax(1)
    for n in range(2):
        for c in range(5):
            region = ((pred[n] == c) & valid[n]).float()
            if region.sum() == 0:
                assert maps[n, c].max() == 0
                continue
            ref = gradcam_aug_reference(model, x[n : n + 1], LAYER, c, region, valid[n])
            assert torch.allclose(maps[n, c], ref, atol=1e-4), (n, c, (maps[n, c] - ref).abs().max())
            assert maps[n, c][~valid[n]].abs().max() == 0


def test_aug_smooth_of_a_cam_with_its_own_forwards(model):
    """Ablation-CAM scores its ablated copies (the head on cached features) on the flipped region too."""
    x = image_batch(1, 32, 64, seed=4)
    maps = AblationCAM(model, aug_smooth=True)(x)
    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    valid = torch.ones(32, 64, dtype=torch.bool)
    for c in [int(pred.flatten()[0])]:  # one class: the reference runs the model 33 times per view
        ref = ablation_aug_reference(model, x, "decoder", c, (pred == c).float(), valid)
        assert torch.allclose(maps[0, c], ref, atol=1e-4), (c, (maps[0, c] - ref).abs().max())


def test_aug_smooth_gives_a_callable_score_the_output_mapped_back(model):
    """score(P): the left half's probability of class 1; a flipped view's score is that of its right half."""
    x = image_batch(1, 32, 64, seed=3)

    def left(P):
        return torch.softmax(P, 1)[:, 1:2, :, :32].sum((2, 3))

    maps = GradCAM(model, target_layer=LAYER, score=left, aug_smooth=True)(x)

    def view_map(xt, flip):
        return view_gradcam_reference(model, xt, LAYER, lambda out: left(out.flip(-1) if flip else out)[0, 0])

    ref = aug_smooth_reference(view_map, x, torch.ones(32, 64, dtype=torch.bool))
    assert torch.allclose(maps[0, 0], ref, atol=1e-4), (maps[0, 0] - ref).abs().max()


def test_a_flip_equivariant_view_is_its_own_reference(model):
    """Sanity of the reference: with one view, the unflipped image at factor 1, it is plain Grad-CAM."""
    x = image_batch(1, 32, 64, seed=3)
    with torch.no_grad():
        region = (model(x).argmax(1)[0] == 0).float()
    one = view_gradcam_reference(model, x, LAYER, lambda out: (torch.softmax(out, 1)[0, 0] * region).sum())
    plain = GradCAM(model, target_layer=LAYER)(x)[0, 0]
    assert torch.allclose(plain, _positive_minmax(one, torch.ones(32, 64, dtype=torch.bool)), atol=1e-5)
    assert _up_to(torch.ones(2, 4), (4, 8)).shape == (4, 8)


@pytest.mark.parametrize("name", CAMS)
def test_both_keep_every_map_finite_and_in_0_1(model, name):
    x = image_batch(1, 32, 64, seed=5)
    kw = {**_kw(name), **({"max_activation_maps": 4} if name == "scorecam" else {})}
    maps = methods()[name].cls(model, target_layer=LAYER, eigen_smooth=True, aug_smooth=True, **kw)(x)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 and maps.max() == 1


def test_the_flags_and_variant_keys():
    parser = build_parser("gradcam")
    text = parser.format_help()
    assert "--eigen_smooth" in text and "--aug_smooth" in text
    args = parser.parse_args(["--model_path", "m.pth", "--images", "a.png", "--eigen_smooth", "--aug_smooth"])
    opts = run_options(args, "gradcam", [])
    assert opts.method_options["eigen_smooth"] is True and opts.method_options["aug_smooth"] is True
    args = parser.parse_args(["--model_path", "m.pth", "--images", "a.png"])
    assert "eigen_smooth" not in run_options(args, "gradcam", []).method_options
    from xai.evaluation.variants import parse_variant

    variant = parse_variant("gradcam:eigen=true,aug=1")
    assert dict(variant.overrides) == {"eigen_smooth": True, "aug_smooth": True}


def test_xai_explain_takes_both():
    rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    model = tiny_fpn(seed=0)
    plain = xai.explain(model, rgb, methods="gradcam", img_size=(64, 64))
    smooth = xai.explain(model, rgb, methods="gradcam", img_size=(64, 64), eigen_smooth=True, aug_smooth=True)
    engine = smooth._session.setup.engines["gradcam"]
    assert engine.options.eigen_smooth and engine.options.aug_smooth
    assert "'eigen_smooth': True" in str(smooth._session.setup.run_key)  # the resume key
    assert np.isfinite(smooth.maps["gradcam"]).all() and not np.allclose(smooth.maps["gradcam"], plain.maps["gradcam"])
