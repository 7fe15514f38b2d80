"""Figures (xai.render): colours, notices, files, formats, page sizes, threads and processes."""

from __future__ import annotations

import multiprocessing
import pathlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import matplotlib.figure
import numpy as np
import pytest

from xai import render
from xai.render import FN_COLOR, FP_COLOR, TP_COLOR

CLASSES = ["background", "root", "hypocotyl", "cotyledon", "seed"]
COLORS = [(0, 0, 0), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255)]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seedling():
    """A small portrait photograph (W 60 x H 120) of a seedling: grey background, thin root line,
    hypocotyl, seed; a prediction that misses the root tip and over-segments its side; a gaussian cam."""
    h, w = 120, 60
    rng = np.random.default_rng(0)
    grey = np.clip(rng.normal(120, 6, (h, w)), 0, 255).astype(np.uint8)
    rgb = np.dstack([grey] * 3)
    gt = np.zeros((h, w), np.uint8)
    gt[60:110, 29:31] = 1  # root: 2 px wide
    gt[30:60, 27:33] = 2  # hypocotyl
    gt[55:63, 26:34] = 4  # seed
    rgb[gt > 0] = (230, 230, 210)
    pred = gt.copy()
    pred[95:110, 29:31] = 0  # missed root tip
    pred[60:95, 31] = 1  # root too wide
    yy, xx = np.mgrid[0:h, 0:w]
    cam = np.exp(-(((xx - 30) / 10.0) ** 2 + ((yy - 80) / 25.0) ** 2)).astype(np.float32)
    return rgb, gt, pred, cam


def _read_png(path: Path) -> np.ndarray:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} cannot be decoded"
    return img


def _assert_figure(path: Path, min_std: float = 15.0) -> np.ndarray:
    img = _read_png(path)
    assert img.shape[0] > 200 and img.shape[1] > 200, img.shape
    assert float(img.std()) > min_std, f"{path} looks blank (std {img.std():.1f})"
    return img


def _no_temporaries(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name]
    assert leftovers == [], leftovers


# ------------------------------------------------------------------------------------------------
# counts and colours
# ------------------------------------------------------------------------------------------------


def _squares():
    gt = np.zeros((20, 20), np.uint8)
    pred = np.zeros((20, 20), np.uint8)
    gt[4:12, 4:12] = 1  # 8x8 = 64 px
    pred[6:14, 6:14] = 1  # shifted by (2, 2): overlap 6x6 = 36
    rgb = np.full((20, 20, 3), 100, np.uint8)
    return rgb, gt, pred


def test_error_overlay_colours():
    rgb, gt, pred = _squares()
    tp = (gt == 1) & (pred == 1)
    fp = (gt != 1) & (pred == 1)
    fn = (gt == 1) & (pred != 1)
    none = ~(tp | fp | fn)

    exact = render.error_overlay(rgb, gt, pred, 1, alpha=1.0)
    assert exact.shape == (20, 20, 3) and exact.dtype == np.uint8
    assert (exact[tp] == TP_COLOR).all()
    assert (exact[fp] == FP_COLOR).all()
    assert (exact[fn] == FN_COLOR).all()

    blended = render.error_overlay(rgb, gt, pred, 1)  # alpha 0.6 over grey 100
    assert (blended[tp].argmax(axis=1) == 1).all()  # green dominates
    assert (blended[fp].argmax(axis=1) == 0).all()  # red dominates
    assert (blended[fn].argmax(axis=1) == 2).all()  # blue dominates
    expected_tp = np.rint(0.4 * 100 + 0.6 * np.asarray(TP_COLOR)).astype(np.uint8)
    assert (blended[tp] == expected_tp).all()
    # other pixels keep the (slightly dimmed) image: grey, not brighter, not black
    rest = blended[none].astype(int)
    assert (rest[:, 0] == rest[:, 1]).all() and (rest[:, 1] == rest[:, 2]).all()
    assert ((rest[:, 0] > 50) & (rest[:, 0] <= 100)).all()
    assert rgb[0, 0, 0] == 100  # input untouched


def test_colorize_classes():
    ids = np.array([[0, 1, 2], [3, 4, 255]], np.uint8)
    out = render.colorize_classes(ids, COLORS)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert [tuple(v) for v in out[0]] == [COLORS[0], COLORS[1], COLORS[2]]
    assert [tuple(v) for v in out[1, :2]] == [COLORS[3], COLORS[4]]
    assert tuple(out[1, 2]) == render.UNKNOWN_CLASS_COLOR


def test_heatmap_overlay_and_validation(seedling):
    rgb, _, _, cam = seedling
    out = render.heatmap_overlay(rgb, cam)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    with pytest.raises(ValueError):
        render.heatmap_overlay(rgb, cam[:10])
    # alpha 1: the colour map itself; alpha 0: the image
    assert (render.heatmap_overlay(rgb, cam, alpha=0.0) == rgb).all()
    turbo = render.heatmap_overlay(rgb, np.ones_like(cam), alpha=1.0)
    assert (turbo == turbo[0, 0]).all() and turbo[0, 0, 0] > 100 > turbo[0, 0, 2]  # dark red


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------


def _maps(cam):
    c = len(CLASSES)
    return {
        "Grad-CAM": [np.roll(cam, 5 * i, axis=0) if i != 4 else None for i in range(c)],
        "Score-CAM": np.stack([np.roll(cam, -5 * i, axis=0) for i in range(c)]),
    }


def test_save_error_figure(tmp_path, seedling):
    rgb, gt, pred, _ = seedling
    out = render.save_error_figure(tmp_path / "err.png", rgb, gt, pred, 1, CLASSES, COLORS, title="root errors")
    assert out == tmp_path / "err.png"
    img = _assert_figure(out)
    assert img.shape[0] > img.shape[1] / 4  # portrait panels are not squashed into a thin strip
    _no_temporaries(tmp_path)


def test_save_error_figure_absent_class(tmp_path, seedling):
    rgb, gt, pred, _ = seedling
    assert not (gt == 3).any() and not (pred == 3).any()
    out = render.save_error_figure(tmp_path / "absent.png", rgb, gt, pred, "cotyledon", CLASSES, COLORS)
    img = _assert_figure(out)
    # the overlay panel (right quarter) carries the text box, so it is not a plain dimmed photograph
    right = img[:, int(img.shape[1] * 0.76) :]
    assert (right > 235).all(axis=2).sum() > 200  # white text box
    _no_temporaries(tmp_path)


def test_save_error_figure_without_gt(tmp_path, seedling):
    rgb, _, pred, _ = seedling
    _assert_figure(render.save_error_figure(tmp_path / "nogt.png", rgb, None, pred, 1, CLASSES, COLORS))
    _no_temporaries(tmp_path)


def test_save_heatmap_figure(tmp_path, seedling):
    rgb, _, pred, cam = seedling
    out = render.save_heatmap_figure(tmp_path / "hm.png", rgb, cam, "root", "Score-CAM", region_contour=pred == 1)
    _assert_figure(out)
    _assert_figure(render.save_heatmap_figure(tmp_path / "zero.png", rgb, np.zeros_like(cam), "root", "Score-CAM"))
    _no_temporaries(tmp_path)


def test_save_heatmap_figure_note_without_cam(tmp_path, seedling):
    rgb = seedling[0]
    out = render.save_heatmap_figure(
        tmp_path / "note.png",
        rgb,
        None,
        "seed",
        "Score-CAM",
        note="class 'seed' absent from its region (pred): no explanation",
    )
    _assert_figure(out)
    _no_temporaries(tmp_path)


def test_nan_cam_is_refused(tmp_path, seedling):
    rgb, gt, pred, cam = seedling
    bad = cam.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        render.save_heatmap_figure(tmp_path / "nan.png", rgb, bad, "root", "Score-CAM")
    maps = _maps(cam)
    maps["Score-CAM"] = maps["Score-CAM"].copy()
    maps["Score-CAM"][2, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        render.save_comparison_figure(tmp_path / "nan_cmp.png", rgb, gt, pred, maps, CLASSES, COLORS)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporaries


def test_save_comparison_figure_portrait(tmp_path, seedling):
    rgb, gt, pred, cam = seedling
    notes = {("Grad-CAM", "seed"): "class 'seed' absent from its region (pred): no explanation"}
    out = render.save_comparison_figure(tmp_path / "cmp.png", rgb, gt, pred, _maps(cam), CLASSES, COLORS, notes=notes)
    img = _assert_figure(out)
    assert img.shape[0] > img.shape[1]  # 5 rows of a portrait image: a tall figure
    # a subset of classes, by name and index, and no ground truth
    out2 = render.save_comparison_figure(
        tmp_path / "cmp2.png", rgb, None, pred, _maps(cam), CLASSES, COLORS, classes_to_show=["root", 4]
    )
    _assert_figure(out2)
    _no_temporaries(tmp_path)


def test_figures_of_a_landscape_image(tmp_path, seedling):
    rgb, gt, pred, cam = (np.ascontiguousarray(np.swapaxes(a, 0, 1)) for a in seedling)
    _assert_figure(render.save_error_figure(tmp_path / "e.png", rgb, gt, pred, 1, CLASSES, COLORS))
    _assert_figure(render.save_heatmap_figure(tmp_path / "h.png", rgb, cam, "root", "Grad-CAM"))
    _no_temporaries(tmp_path)


def test_extreme_aspect_ratios_stay_on_the_page(tmp_path):
    """Very wide or very tall photographs give figures of a sensible size (panels stack or shrink)."""
    rng = np.random.default_rng(1)
    for h, w in ((24, 480), (480, 24)):
        rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        gt = np.zeros((h, w), np.uint8)
        gt[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
        pred = np.roll(gt, 2, axis=1)
        cam = rng.random((h, w)).astype(np.float32)
        maps = {"Grad-CAM": np.stack([cam] * len(CLASSES)), "Score-CAM": None}
        cases: tuple[tuple[str, Callable[..., Path], tuple[Any, ...], dict[str, Any]], ...] = (
            ("e", render.save_error_figure, (rgb, gt, pred, 1, CLASSES, COLORS), {"title": "x" * 120}),
            ("h", render.save_heatmap_figure, (rgb, cam, "root", "Score-CAM"), {"note": "a note " * 20}),
            ("c", render.save_comparison_figure, (rgb, gt, pred, maps, CLASSES, COLORS), {}),
        )
        for name, draw, args, kwargs in cases:
            img = _assert_figure(draw(tmp_path / f"{name}_{h}x{w}.png", *args, **kwargs))
            assert img.shape[1] <= 16 * render.DEFAULT_DPI + 10, (name, img.shape)  # at most 16 inches wide
            assert img.shape[0] <= 22 * render.DEFAULT_DPI, (name, img.shape)
    _no_temporaries(tmp_path)


def test_vector_formats(tmp_path, seedling):
    rgb, gt, pred, cam = seedling
    pdf = render.save_error_figure(tmp_path / "err.pdf", rgb, gt, pred, 1, CLASSES, COLORS)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    svg = render.save_heatmap_figure(tmp_path / "hm.svg", rgb, cam, "root", "Score-CAM", region_contour=pred == 1)
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "<image" in text
    _no_temporaries(tmp_path)


def test_failed_write_leaves_no_file(tmp_path, seedling, monkeypatch):
    rgb, gt, pred, cam = seedling

    def half_then_boom(self, data):
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError("disk full")

    def boom(*args, **kwargs):
        raise RuntimeError("killed while writing")

    with monkeypatch.context() as m:
        m.setattr(pathlib.Path, "write_bytes", half_then_boom)
        with pytest.raises(OSError, match="disk full"):
            render.save_error_figure(tmp_path / "err.png", rgb, gt, pred, 1, CLASSES, COLORS)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        render.save_heatmap_figure(tmp_path / "hm.pdf", rgb, cam, "root", "Score-CAM")
    assert list(tmp_path.iterdir()) == []


def test_thin_roots_survive_shrinking(tmp_path):
    """A 1 px root missed by the prediction stays visible (blue) in a figure that shrinks the image ~4x."""
    h, w = 2400, 1200
    rgb = np.full((h, w, 3), 120, np.uint8)
    gt = np.zeros((h, w), np.uint8)
    gt[200:2200, 600] = 1
    pred = np.zeros_like(gt)
    img = _read_png(render.save_error_figure(tmp_path / "thin.png", rgb, gt, pred, 1, CLASSES, COLORS))
    fn = np.rint(0.2 * 120 + 0.8 * np.asarray(FN_COLOR))[::-1]  # BGR, as OpenCV reads it
    assert (np.abs(img.astype(int) - fn).max(axis=2) <= 2).sum() > 400  # a line, not just the legend patch
    comparison = _read_png(
        render.save_comparison_figure(
            tmp_path / "c.png", rgb, gt, pred, {"m": None}, CLASSES, COLORS, classes_to_show=["root"]
        )
    )
    assert (np.abs(comparison.astype(int) - fn).max(axis=2) <= 2).sum() > 300


def test_thread_safety(tmp_path, seedling):
    rgb, gt, pred, cam = seedling
    maps = _maps(cam)
    jobs: list[tuple[Callable[..., Path], tuple[Any, ...]]] = []
    for i in range(8):
        path = tmp_path / f"fig{i}.png"
        if i % 4 == 0:
            jobs.append((render.save_error_figure, (path, rgb, gt, pred, 1 + i % 3, CLASSES, COLORS)))
        elif i % 4 == 1:
            jobs.append((render.save_heatmap_figure, (path, rgb, cam, "root", "Score-CAM")))
        elif i % 4 == 2:
            jobs.append((render.save_heatmap_figure, (path, rgb, None, "seed", "Grad-CAM", "no explanation")))
        else:
            jobs.append((render.save_comparison_figure, (path, rgb, gt, pred, maps, CLASSES, COLORS, ["root", "seed"])))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: job[0](*job[1]), jobs))
    assert sorted(results) == sorted(tmp_path / f"fig{i}.png" for i in range(8))
    for i in range(8):
        _assert_figure(tmp_path / f"fig{i}.png")
    _no_temporaries(tmp_path)


def test_process_pool(tmp_path, seedling):
    """Two worker processes drawing at once (as the pipeline's figure writer does) write valid figures."""
    rgb, gt, pred, cam = seedling
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as pool:
        futures = []
        for i in range(3):
            futures += [
                pool.submit(render.save_error_figure, tmp_path / f"e{i}.png", rgb, gt, pred, i + 1, CLASSES, COLORS),
                pool.submit(
                    render.save_heatmap_figure,
                    tmp_path / f"h{i}.png",
                    rgb,
                    cam,
                    "root",
                    "Score-CAM",
                    region_contour=pred == 1,
                ),
                pool.submit(
                    render.save_comparison_figure,
                    tmp_path / f"c{i}.png",
                    rgb,
                    gt,
                    pred,
                    _maps(cam),
                    CLASSES,
                    COLORS,
                    title=f"sample {i}",
                ),
            ]
        paths = [f.result() for f in futures]
    assert len(set(paths)) == 9
    for path in paths:
        _assert_figure(path)
    _no_temporaries(tmp_path)


def test_figures_import_without_torch():
    """Figure worker processes import xai.figures (and with it xai.labels' IGNORE) without torch."""
    import subprocess
    import sys

    code = "import sys, xai.figures, xai.render, xai.labels; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
