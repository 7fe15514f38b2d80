"""Class-contrast scores (--contrast CLASS, auto) and the regions boundary and junction."""

from __future__ import annotations

import json

import pytest
import torch

from tests.explainer_reference import (
    contrast_gradcam_reference,
    contrast_scorecam_reference,
    contrast_subtracted_reference,
)
from tests.helpers import image_batch, run_args, tiny_fpn, top_variance_channels
from xai import GradCAM, ScoreCAM
from xai.cli import main
from xai.contrast import auto_weights
from xai.errors import XAIError
from xai.targets import Region, region_masks

LAYER = "encoder.layer3"
TOL = 1e-4


@pytest.mark.parametrize("contrast", [4, "auto"])
def test_gradcam_contrast_matches_reference(contrast):
    model = tiny_fpn(seed=2)
    x = image_batch(2, 64, 32, seed=3)  # the images and model of the gradient methods' reference test
    classes = [0, 1, 2] if contrast == 4 else [1, 2, 4]
    result = GradCAM(model, target_layer=LAYER, contrast=contrast).explain(x, classes=classes)
    plain = GradCAM(model, target_layer=LAYER).explain(x, classes=classes)
    checked = 0
    for n in range(2):
        for j, c in enumerate(result.classes):
            if result.empty[n, j]:
                continue
            ref = contrast_gradcam_reference(model, x[n : n + 1], LAYER, c, contrast)
            assert torch.allclose(result.maps[n, j], ref, atol=TOL), (n, c, (result.maps[n, j] - ref).abs().max())
            checked += 1
    assert checked >= 3
    assert (result.maps - plain.maps).abs().max() > 0.05  # the contrast changes the maps


@pytest.mark.parametrize("contrast", [4, "auto"])
def test_scorecam_contrast_matches_reference(contrast):
    model = tiny_fpn(seed=2)
    x = image_batch(1, 64, 32, seed=3)
    cam = ScoreCAM(
        model,
        target_layer=LAYER,
        batch_size=20,
        max_activation_maps=6,
        precision="fp32",
        contrast=contrast,
        memory_format="contiguous",  # a timed layout choice could move float32 sums by 1e-4
    )
    classes = [1, 2] if contrast == 4 else None
    result = cam.explain(x, classes=classes)
    channels = top_variance_channels(model, x, LAYER, 6)
    checked = 0
    for j, c in enumerate(result.classes):
        if result.empty[0, j]:
            continue
        ref = contrast_scorecam_reference(model, x, LAYER, c, contrast, channels)
        assert torch.allclose(result.maps[0, j], ref, atol=TOL), (c, (result.maps[0, j] - ref).abs().max())
        checked += 1
    assert checked >= 2


def test_auto_weights_follow_the_definition():
    """q: the mean probability over R_c; the 3 nearest classes to q_c, weights q_k / Σ q."""
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 5, 6, 7, generator=g) * 3, 1)
    regions = (torch.rand(2, 2, 6, 7, generator=g) > 0.5).float()
    classes = [1, 4]
    m = auto_weights(probs, regions, classes).weights
    for n in range(2):
        for j, c in enumerate(classes):
            ref = contrast_subtracted_reference(probs[n], regions[n, j], c, "auto")
            expected = torch.zeros(5)
            for k, w in ref.items():
                expected[k] = w
            assert torch.allclose(m[n, j], expected, atol=1e-6), (n, c, m[n, j], expected)
            assert m[n, j, c] == 0 and int((m[n, j] > 0).sum()) == 3


def _pred() -> torch.Tensor:
    """8×10: class 1 a 3×3 block at rows 2-4, cols 2-4; class 2 at rows 2-4, cols 5-6 (touching 1);
    class 3 a single pixel at (7, 9), far from both; the rest 0."""
    p = torch.zeros(1, 8, 10, dtype=torch.long)
    p[0, 2:5, 2:5] = 1
    p[0, 2:5, 5:7] = 2
    p[0, 7, 9] = 3
    return p


def _pixels(mask: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in mask.nonzero().tolist()}


def test_boundary_is_the_band_inside_and_outside():
    pred = _pred()
    band = region_masks(pred, None, [1], Region("boundary", width=1), 5)[0, 0]
    block = {(i, j) for i in range(2, 5) for j in range(2, 5)}
    ring = {(i, j) for i in range(1, 6) for j in range(1, 6)} - block
    inner = block - {(3, 3)}  # the block's pixels with a non-1 neighbour (8-neighbourhood): all but the centre
    assert _pixels(band) == ring | inner
    wide = region_masks(pred, None, [1], Region("boundary", width=2), 5)[0, 0]
    assert _pixels(wide) == {(i, j) for i in range(0, 7) for j in range(0, 7)}  # the centre is within 2 of the outside
    corner = region_masks(pred, None, [3], Region("boundary", width=1), 5)[0, 0]
    assert _pixels(corner) == {(6, 8), (6, 9), (7, 8), (7, 9)}  # the image's edge is no border


def test_junction_is_where_two_classes_touch():
    pred = _pred()
    r = region_masks(pred, None, [0, 1, 3], Region("junction", width=1, junction=(1, 2)), 5)[0]
    expected = {(i, 4) for i in range(2, 5)} | {(i, 5) for i in range(2, 5)}
    assert all(_pixels(r[j]) == expected for j in range(3))  # the same region for every explained class
    r2 = region_masks(pred, None, [1], Region("junction", width=2, junction=(2, 1)), 5)[0, 0]
    assert _pixels(r2) == {(i, j) for i in range(2, 5) for j in (3, 4, 5, 6)}
    never = region_masks(pred, None, [1], Region("junction", width=1, junction=(1, 3)), 5)
    assert never.sum() == 0


class OneHot(torch.nn.Module):
    """A 'model' whose logits are 10 × its 5-channel input through a 1×1 convolution (identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(5, 5, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(10 * torch.eye(5)[:, :, None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_classes_that_never_touch_give_empty_maps():
    x = torch.nn.functional.one_hot(_pred(), 5).permute(0, 3, 1, 2).float() + 0.01 * image_batch(1, 8, 10)[:, :1]
    never = GradCAM(OneHot(), target_layer="conv", region="junction", junction=(1, 3)).explain(x)
    assert never.empty.all() and never.maps.abs().sum() == 0
    touch = GradCAM(OneHot(), target_layer="conv", region="junction", junction=("1", "2")).explain(x)
    assert not touch.empty.any()


def test_bad_values_are_one_error_line():
    model = tiny_fpn(seed=3)
    x = image_batch(1, 32, 64, seed=5)
    with pytest.raises(XAIError, match="is also an explained class"):
        GradCAM(model, target_layer=LAYER, contrast=2).explain(x, classes=[1, 2])
    with pytest.raises(XAIError, match="unknown class '9'"):
        GradCAM(model, target_layer=LAYER, contrast=9).explain(x)
    engine = GradCAM(model, target_layer=LAYER, contrast="stem")
    with pytest.raises(XAIError, match=r"unknown class 'stem'.*background, hypocotyl"):
        engine.name_classes(["background", "hypocotyl", "cotyledon", "root", "seed"])
    with pytest.raises(XAIError, match="needs its two classes"):
        GradCAM(model, target_layer=LAYER, region="junction")
    with pytest.raises(XAIError, match="two different classes"):
        GradCAM(model, target_layer=LAYER, region="junction", junction=("root", "root")).name_classes(
            ["background", "hypocotyl", "cotyledon", "root", "seed"]
        )


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--contrast", "stem"], "unknown class 'stem' for --contrast"),
        (["--contrast", "root"], "--contrast root is also an explained class"),
        (["--region", "junction"], "--region junction needs its two classes: --junction A B"),
        (["--region", "junction", "--junction", "root", "leaf"], "unknown class 'leaf' for --junction"),
    ],
)
def test_cli_refuses_bad_values_in_one_line(tiny_run, tmp_path, capfd, extra, message):
    _base, data, ckpt = tiny_run
    code = main("gradcam", run_args(ckpt, data, tmp_path / "o", *extra))
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_cli_runs_contrast_and_junction_and_records_them(tiny_run, tmp_path):
    _base, data, ckpt = tiny_run
    out = tmp_path / "o"
    extra = ["--methods", "gradcam,hirescam", "--compare", "--classes", "hypocotyl", "--contrast", "root"]
    extra += ["--region", "junction", "--junction", "hypocotyl", "root", "--boundary_width", "3"]
    assert main("gradcam", run_args(ckpt, data, out, *extra)) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert '"contrast": "root"' in text and '"junction": ["hypocotyl", "root"]' in text, text[:2000]
    assert '"boundary_width": 3' in text


def test_python_api_takes_contrast(tiny_run):
    import numpy as np

    import xai

    _base, _data, ckpt = tiny_run
    rgb = (np.random.default_rng(0).random((60, 120, 3)) * 255).astype("uint8")
    plain = xai.explain(str(ckpt), rgb, methods="gradcam", classes=["hypocotyl"])
    contrast = xai.explain(str(ckpt), rgb, methods="gradcam", classes=["hypocotyl"], contrast="root")
    with pytest.raises(XAIError, match="unknown class 'stem'"):
        xai.explain(str(ckpt), rgb, methods="gradcam", classes=["hypocotyl"], contrast="stem")
    assert plain.maps["gradcam"].shape == contrast.maps["gradcam"].shape
    if not plain.empty["gradcam"]:
        assert np.abs(plain.maps["gradcam"] - contrast.maps["gradcam"]).max() > 0


def test_matches_pytorch_grad_cam():
    """GradCAM with a difference target (and FinerCAM's comparison with one class, where its weights
    cancel) on the same model, layer and region: bench/crosscheck_pytorch_grad_cam.py has every row."""
    pgc = pytest.importorskip("pytorch_grad_cam", reason="pytorch-grad-cam is not installed (optional peer)")
    import numpy as np

    model = tiny_fpn(seed=3)
    x = image_batch(1, 32, 64, seed=5)

    class Softmax(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return torch.softmax(self.inner(x), 1)

    with torch.no_grad():
        pred = model(x).argmax(1)[0]
    c, k = int(pred.flatten().mode().values), 4
    ours = GradCAM(model, target_layer=LAYER, contrast=k).explain(x, classes=[c]).maps[0, 0].numpy()
    mask = (pred == c).float()
    layer = dict(model.named_modules())[LAYER]
    cam = pgc.GradCAM(model=Softmax(model), target_layers=[layer])
    theirs = cam(input_tensor=x, targets=[lambda out: (out[c] * mask).sum() - (out[k] * mask).sum()])[0]
    assert np.abs(ours - theirs).max() < 1e-4


def _contrast_score(model, image, cls, region, weights):
    """s'_c of the module docstring, from the definition: the mean over R_c of P_c − Σ_k w_k P_k (float64)."""
    with torch.no_grad():
        P = torch.softmax(model(image[None].float())[0].double(), 0)
    q = P[cls] - sum(w * P[k] for k, w in weights.items())
    return float(q[region].mean())


@pytest.mark.parametrize("contrast", [4, "auto"])
def test_faithfulness_measures_the_contrast_score(contrast):
    """Deletion (linear), the unperturbed score and Average Drop of Faithfulness(contrast=...) against the
    contrast score written from its definition (weights from the unperturbed image, held fixed)."""
    from tests import metric_reference as ref
    from xai.metrics.faithfulness import Faithfulness

    model = tiny_fpn(seed=2).eval()
    x = image_batch(1, 32, 64, seed=3)
    with torch.no_grad():
        out = model(x)
    pred, probs = out.argmax(1)[0], torch.softmax(out.double(), 1)[0]
    classes = [c for c in range(4) if (pred == c).any()][:2]
    regions = torch.stack([pred == c for c in classes])
    valid = torch.ones(pred.shape, dtype=torch.bool)
    maps = torch.rand((len(classes), *pred.shape), generator=torch.Generator().manual_seed(1))
    faith = Faithfulness(model, x, classes, regions, valid, contrast=contrast, batch_size=8)
    plain = Faithfulness(model, x, classes, regions, valid, batch_size=8)
    curves = faith.deletion({"m": maps}, steps=4, schedule="linear")["m"]
    drops = faith.average_drop_increase({"m": maps})["m"]
    assert faith.forwards["contrast"] == 1
    for j, c in enumerate(classes):
        weights = contrast_subtracted_reference(probs, regions[j], c, contrast)
        y = _contrast_score(model, x[0], c, regions[j], weights)
        assert faith.y[j] == pytest.approx(y, abs=1e-6)
        assert abs(faith.y[j] - plain.y[j]) > 1e-3  # the contrast changes the score
        pixels = ref.order(maps[j], valid)
        ys = []
        for i in range(5):
            image = x[0].clone().double()
            for p in pixels[: ref.round_half_up(i * len(pixels) / 4)]:
                image[:, p[0], p[1]] = 0.0
            ys.append(_contrast_score(model, image, c, regions[j], weights))
        assert curves[j].auc == pytest.approx(ref.trapezoid(ys), abs=1e-5), c  # float32 forwards, batched
        if y > 0:
            scaled = x[0] * (maps[j] - maps[j].min()) / (maps[j].max() - maps[j].min())
            o = _contrast_score(model, scaled.double(), c, regions[j], weights)
            assert drops[j].o == pytest.approx(o, abs=1e-5)  # O of Average Drop: x ⊙ the scaled map
            assert drops[j].drop == pytest.approx(max(0.0, drops[j].y - drops[j].o) / drops[j].y * 100, abs=1e-9)
        else:
            assert drops[j].reason == "the score on the unperturbed image is not positive"


def test_faithfulness_refuses_a_contrast_that_is_explained():
    from xai.metrics.faithfulness import Faithfulness

    model = tiny_fpn(seed=2).eval()
    x = image_batch(1, 32, 64, seed=3)
    regions, valid = torch.ones(1, 32, 64, dtype=torch.bool), torch.ones(32, 64, dtype=torch.bool)
    with pytest.raises(XAIError, match="other than the explained classes"):
        Faithfulness(model, x, [1], regions, valid, contrast=1)


def test_cli_evaluation_measures_the_contrast_score(tiny_run, tmp_path):
    """--contrast with --evaluate: the manifest and the report say what was measured; the deletion AUCs
    differ from the run without a contrast, the context matrix (the classes' own scores) does not."""
    _base, data, ckpt = tiny_run
    extra = ["--methods", "gradcam", "--classes", "hypocotyl", "cotyledon", "--evaluate", "--eval_steps", "3"]
    extra += ["--no_road", "--stability_samples", "0", "--sanity_samples", "0", "--num_samples", "1"]
    rows = {}
    for name, more in (("plain", []), ("contrast", ["--contrast", "root"])):
        out = tmp_path / name
        assert main("gradcam", run_args(ckpt, data, out, *extra, *more)) == 0
        rows[name] = {
            (r["method"], r["variant"], r["class"], r["metric"]): r["value"]
            for r in json.loads((out / "metrics.json").read_text())["rows"]
        }
    manifest = json.loads((tmp_path / "contrast" / "manifest.json").read_text())
    assert manifest["evaluation"]["settings"]["contrast"] == 3  # root's output id
    report = (tmp_path / "contrast" / "report.md").read_text()
    assert "the perturbation metrics measure the contrast score s_c − s_root" in report
    deletion = [k for k in rows["plain"] if k[3] == "deletion_auc_linear" and rows["plain"][k] is not None]
    assert deletion and any(abs(rows["plain"][k] - rows["contrast"][k]) > 1e-2 for k in deletion)
    context = [k for k in rows["plain"] if k[0] == "context_dependence" and rows["plain"][k] is not None]
    # to 1e-4: each run times its memory layout (xai.precision), which can round the float32 forwards otherwise
    differ = {
        k: (rows["plain"][k], rows["contrast"][k])
        for k in context
        if abs(rows["plain"][k] - rows["contrast"][k]) > 1e-4
    }
    assert context and not differ, differ
