"""xai.explain: one call from Python on a path, a list, an array or a PIL image; its maps are the CLI's (the
npz on the photograph), its files the CLI's, its evaluation --evaluate's; bad input is one XAIError line."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import xai
from tests.helpers import tiny_fpn
from xai.cli import main
from xai.config import DEFAULT_CLASSES
from xai.errors import XAIError
from xai.mapfile import load_maps

CLASSES = list(DEFAULT_CLASSES)
# Score-CAM over 4 channels, in one memory layout: "auto" times both layouts per model, and the other layout's
# float32 sums differ in the last bits, which can move a map by one float16 step (~5e-4) where it is stored
FAST = {"max_activation_maps": 4, "batch_size": 4, "memory_format": "contiguous"}
CLI_FAST = ["--max_activation_maps", "4", "--batch_size", "4", "--no_progress", "--workers", "0"]
FLOAT16_STEP = 2**-11  # the spacing of float16 numbers in [0.5, 1]: what the CLI's layout may move a stored map by
EVALUATION = {"eval_steps": 4, "road": False, "stability_samples": 0, "sanity_samples": 0}


@pytest.fixture(scope="module")
def photos(tiny_run, tmp_path_factory) -> list[Path]:
    """Two photographs of the tiny split (60×120) and the first one scaled to 90×70, in a folder of their own."""
    _base, data, _ckpt = tiny_run
    folder = tmp_path_factory.mktemp("api") / "photos"
    folder.mkdir()
    names = sorted(p.name for p in (data / "images").iterdir())[:2]
    for name in names:
        shutil.copy(data / "images" / name, folder / name)
    first = _bgr(folder / names[0])
    cv2.imwrite(str(folder / "wide.png"), cv2.resize(first, (90, 70), interpolation=cv2.INTER_AREA))
    return [folder / names[0], folder / names[1], folder / "wide.png"]


@pytest.fixture(scope="module")
def one(tiny_run, photos) -> xai.Explanation:
    _base, _data, ckpt = tiny_run
    result = xai.explain(ckpt, photos[0], methods=("scorecam", "gradcam"), **FAST)
    assert isinstance(result, xai.Explanation)
    return result


def _bgr(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    return bgr


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(_bgr(path), cv2.COLOR_BGR2RGB)


def test_one_photograph_gives_everything_on_the_photograph(one, photos):
    h, w = _rgb(photos[0]).shape[:2]
    assert one.classes == CLASSES and one.methods == ["scorecam", "gradcam"]
    assert one.name == photos[0].name and one.source == str(photos[0])
    np.testing.assert_array_equal(one.image, _rgb(photos[0]))
    assert one.prediction.shape == (h, w) and one.prediction.dtype == np.uint8 and one.prediction.max() < 5
    p = one.probabilities
    assert p.shape == (5, h, w) and p.dtype == np.float32
    # a softmax, mapped back linearly, stored as float16 (Explained.probabilities_input): each probability is
    # rounded by at most 2**-11 of itself, so the sum by at most 2**-11 ≈ 4.9e-4
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-3)
    assert (p.argmax(0) == one.prediction).mean() > 0.9  # nearest vs bilinear differ at class borders only
    for method in one.methods:
        maps = one.maps[method]
        assert maps.shape == (5, h, w) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        for name in one.classes:
            assert name in one.empty[method] or maps[one.classes.index(name)].max() > 0.9  # 1 at the input, resized
    np.testing.assert_array_equal(one.map("gradcam", "root"), one.maps["gradcam"][3])


@pytest.mark.parametrize("method", ["scorecam", "gradcam"])
def test_its_maps_are_the_cli_npz_maps_on_the_photograph(tiny_run, photos, one, tmp_path, method):
    _base, _data, ckpt = tiny_run
    out = tmp_path / "cli"
    args = ["--model_path", str(ckpt), "--images", str(photos[0]), "--output_dir", str(out), *CLI_FAST]
    assert main(method, args) == 0
    stored = load_maps(out / "raw_maps" / "sample0.npz")
    np.testing.assert_allclose(one.maps[method], stored.on_photograph(method), rtol=0, atol=FLOAT16_STEP)
    np.testing.assert_array_equal(one.prediction, stored.pred)


def test_a_list_of_a_path_an_array_and_a_pil_image(tiny_run, photos, one):
    _base, _data, ckpt = tiny_run
    rgb = _rgb(photos[0])
    pil = Image.open(photos[0])
    results = xai.explain(ckpt, [photos[2], rgb, pil, str(photos[1])], methods=("scorecam", "gradcam"), **FAST)
    assert isinstance(results, xai.Explanations) and len(results) == 4
    assert [r.name for r in results] == ["wide.png", "image1", photos[0].name, photos[1].name]
    assert [r.source for r in results] == [str(photos[2]), None, None, str(photos[1])]
    assert results[0].image.shape == (70, 90, 3)  # another size: a group of its own
    for same in results[1:3]:  # the same pixels as `one`, so the same maps
        for method in one.methods:
            np.testing.assert_array_equal(same.maps[method], one.maps[method])
        np.testing.assert_array_equal(same.prediction, one.prediction)


def test_a_folder_and_a_glob_are_found_as_images_finds_them(tiny_run, photos):
    _base, _data, ckpt = tiny_run
    folder = photos[0].parent
    by_folder = xai.explain(ckpt, folder, methods="gradcam")
    by_glob = xai.explain(ckpt, str(folder / "*.png"), methods="gradcam")
    assert [r.name for r in by_folder] == [r.name for r in by_glob] == sorted(p.name for p in photos)


def test_classes_by_name_or_id_in_the_order_asked(tiny_run, photos, one):
    _base, _data, ckpt = tiny_run
    some = xai.explain(ckpt, photos[0], methods="gradcam", classes=["root", 2])
    assert some.classes == ["root", "cotyledon"] and some.maps["gradcam"].shape[0] == 2
    # the classes' gradients come from one backward pass of all of them: float32 sums of other lengths
    np.testing.assert_allclose(some.maps["gradcam"][0], one.maps["gradcam"][3], rtol=0, atol=FLOAT16_STEP)
    np.testing.assert_allclose(some.maps["gradcam"][1], one.maps["gradcam"][2], rtol=0, atol=FLOAT16_STEP)


def test_an_nn_module_with_its_input_gives_the_checkpoints_maps(photos, one):
    model = tiny_fpn(seed=0)  # the tiny_run checkpoint's weights, as a module: 64×64, ImageNet normalisation
    result = xai.explain(model, photos[0], methods=("scorecam", "gradcam"), img_size=(64, 64), **FAST)
    for method in one.methods:
        np.testing.assert_array_equal(result.maps[method], one.maps[method])
    with pytest.raises(XAIError, match=r"the model has 3 outputs, but 5 classes are named"):
        xai.explain(tiny_fpn(classes=3), photos[0], methods="gradcam", img_size=(64, 64))
    three = xai.explain(tiny_fpn(classes=3), photos[0], "gradcam", img_size=(64, 64), class_names=["a", "b", "c"])
    assert three.classes == ["a", "b", "c"] and three.probabilities.shape[0] == 3


def test_show_is_an_inline_figure_and_overlay_an_rgb_array(one):
    fig = one.show("root")
    png = fig._repr_png_()  # what Jupyter displays
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape[1] > picture.shape[0]  # photograph, prediction, 2 maps in a row
    assert one.show().get_size_inches()[1] > fig.get_size_inches()[1] * 3  # a row per class
    overlay = one.overlay("scorecam", "root")
    assert overlay.shape == one.image.shape and overlay.dtype == np.uint8
    assert not np.array_equal(overlay, one.image)
    with pytest.raises(XAIError, match="class 'leaf' was not explained"):
        one.show("leaf")
    with pytest.raises(XAIError, match="no maps of 'rise' here"):
        one.overlay("rise", "root")


def test_save_writes_the_cli_files_for_these_photographs(one, tmp_path):
    manifest = one.save(tmp_path / "saved")
    out = tmp_path / "saved"
    assert manifest is not None and manifest["samples"]["explained"] == 1
    assert manifest["input"]["img_size"] == [64, 64] and manifest["region"] == "pred"
    for name in (
        "index.html",
        "gallery.html",
        "explorer/data.js",
        "explorer/sample0.js",
        "summary.csv",
        "manifest.json",
    ):
        assert (out / name).is_file()
    for c in CLASSES:
        assert (out / "prediction_maps" / f"sample0_prediction_{c}.png").is_file()
        assert (out / "scorecam_maps" / f"sample0_scorecam_{c}.png").is_file()
    assert (out / "comparison" / "sample0_comparison.png").is_file()
    stored = load_maps(out / "raw_maps" / "sample0.npz")
    for method in one.methods:
        np.testing.assert_allclose(stored.on_photograph(method), one.maps[method], rtol=0, atol=1e-6)
    with open(out / "summary.csv", encoding="utf-8") as fh:
        assert [r["class"] for r in csv.DictReader(fh)] == CLASSES


def test_evaluate_gives_the_rows_of_the_cli_evaluation(tiny_run, photos, tmp_path):
    _base, _data, ckpt = tiny_run
    two = ["root", "seed"]
    result = xai.explain(ckpt, photos[0], methods="gradcam", classes=two)
    rows = result.evaluate(**EVALUATION)
    out = tmp_path / "cli"
    flags = ["--eval_steps", "4", "--no_road", "--stability_samples", "0", "--sanity_samples", "0", "--evaluate"]
    args = ["--model_path", str(ckpt), "--images", str(photos[0]), "--output_dir", str(out), *CLI_FAST, *flags]
    assert main("gradcam", [*args, "--classes", *two]) == 0
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        cli = {(r["class"], r["variant"], r["metric"]): r["value"] for r in csv.DictReader(fh)}
    mine = {(r["class"], r["variant"], r["metric"]): r["value"] for r in rows}
    assert rows.curves and rows.sanity == {}  # curves beside the rows; no sanity check with sanity_samples 0
    assert "gradcam" in {k[1] for k in mine} and {k[0] for k in mine} == set(two)
    assert {r["variant"] for r in rows if r["method"] == "context_dependence"} == {
        *two,
        "background_near",
        "background_far",
    }  # the context-dependence matrix's rows are among them
    assert mine.keys() == cli.keys() and len(mine) > 20
    for key, value in mine.items():
        if key[2] == "seconds":  # how long the map took: not a measure of it
            continue
        if value is None:
            assert cli[key] == "", key
        else:
            tolerance = 1e-4 if key[2] == "average_drop" else 1e-7  # Average Drop is in percent
            if key[2].startswith("context_"):  # (s' − s)/s: float32 rounding of s' and s, divided by s (≈ 0.1)
                tolerance = 1e-5
            assert float(cli[key]) == pytest.approx(value, rel=1e-5, abs=tolerance), key  # float32 forwards


def test_bad_input_is_one_line(tiny_run, photos, tmp_path):
    _base, _data, ckpt = tiny_run
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(photos[0], broken / "a.png")
    (broken / "b.png").write_bytes(b"not a png")
    cases = [
        (lambda: xai.explain(ckpt, broken), "b.png"),
        (lambda: xai.explain(ckpt, str(tmp_path / "none" / "*.jpg")), "matches no file"),
        (lambda: xai.explain(ckpt, photos[0], classes=["leaf"]), "unknown class 'leaf'"),
        (lambda: xai.explain(ckpt, photos[0], classes=[7]), "class id 7 is not an output"),
        (lambda: xai.explain(ckpt, photos[0], max_activation_map=3), "no option 'max_activation_map'"),
        (lambda: xai.explain(ckpt, np.zeros((8, 8, 3))), "uint8"),
        (lambda: xai.explain(ckpt, []), "no image to explain"),
        (lambda: xai.explain(ckpt, photos[0], region="tp"), "needs a mask"),
        (lambda: xai.explain(ckpt, photos[0], score=lambda out: out[:, :1].sum((2, 3))), "a custom score"),
        (lambda: xai.explain(42, photos[0]), "model must be a checkpoint path"),
        (lambda: xai.explain(tmp_path / "missing.pth", photos[0]), "model file not found"),
    ]
    for call, message in cases:
        with pytest.raises(XAIError) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value)


def test_probabilities_are_the_models_forward_up_to_float16(one):
    """Explanation.probabilities come from the run's forward pass (stored as float16), not a forward of their
    own: a fresh forward of the same input, mapped back alike, differs by float16's rounding alone (at most
    2**-12 for a probability in [0.5, 1], bilinear interpolation moving no value beyond its neighbours')."""
    import torch

    engine = next(iter(one._session.setup.engines.values()))
    x = one._sample.image[None].to(engine.device)
    with torch.inference_mode():
        p = engine.scored.probabilities_of(engine.scored.run(x, None, False))[0].float().numpy()
    expected = np.stack([one._ex.letterbox.to_original(c) for c in p])
    np.testing.assert_allclose(one.probabilities, expected, rtol=0, atol=2**-12 + 1e-6)
    assert np.abs(one.probabilities - expected).max() > 0  # float16 storage: not bit-equal
