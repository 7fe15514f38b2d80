"""Figures (xai.render) and the HTML gallery (xai.gallery): colours, counts, files, thread safety."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import pytest

from xai import render
from xai.gallery import write_gallery
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


def test_error_counts_exact():
    _, gt, pred = _squares()
    assert render.error_counts(gt, pred, 1) == {"tp": 36, "fp": 28, "fn": 28}
    assert render.error_counts(gt, pred, 0) == {"tp": 400 - 92, "fp": 28, "fn": 28}
    assert render.error_counts(gt, pred, 3) == {"tp": 0, "fp": 0, "fn": 0}
    iou, dice = render.iou_dice(render.error_counts(gt, pred, 1))
    assert iou == pytest.approx(36 / 92) and dice == pytest.approx(72 / 128)
    assert render.iou_dice({"tp": 0, "fp": 0, "fn": 0}) == (None, None)


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
    with pytest.raises(ValueError):
        render.error_counts(np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8), 1)


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
    right = img[:, int(img.shape[1] * 0.76):]
    assert (right > 235).all(axis=2).sum() > 200  # white text box
    _no_temporaries(tmp_path)


def test_save_error_figure_without_gt(tmp_path, seedling):
    rgb, _, pred, _ = seedling
    _assert_figure(render.save_error_figure(tmp_path / "nogt.png", rgb, None, pred, 1, CLASSES, COLORS))
    _no_temporaries(tmp_path)


def test_save_heatmap_figure(tmp_path, seedling):
    rgb, _, pred, cam = seedling
    out = render.save_heatmap_figure(tmp_path / "hm.png", rgb, cam, "root", "Score-CAM",
                                     region_contour=pred == 1)
    _assert_figure(out)
    _no_temporaries(tmp_path)


def test_save_heatmap_figure_note_without_cam(tmp_path, seedling):
    rgb = seedling[0]
    out = render.save_heatmap_figure(tmp_path / "note.png", rgb, None, "seed", "Score-CAM",
                                     note="class 'seed' absent from its region (pred): no explanation")
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
    out = render.save_comparison_figure(tmp_path / "cmp.png", rgb, gt, pred, _maps(cam), CLASSES, COLORS,
                                        notes=notes)
    img = _assert_figure(out)
    assert img.shape[0] > img.shape[1]  # 5 rows of a portrait image: a tall figure
    # a subset of classes, by name and index, and no ground truth
    out2 = render.save_comparison_figure(tmp_path / "cmp2.png", rgb, None, pred, _maps(cam), CLASSES, COLORS,
                                         classes_to_show=["root", 4])
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
        gt[h // 4:3 * h // 4, w // 4:3 * w // 4] = 1
        pred = np.roll(gt, 2, axis=1)
        cam = rng.random((h, w)).astype(np.float32)
        maps = {"Grad-CAM": np.stack([cam] * len(CLASSES)), "Score-CAM": None}
        for name, draw in (
            ("e", lambda p: render.save_error_figure(p, rgb, gt, pred, 1, CLASSES, COLORS, title="x" * 120)),
            ("h", lambda p: render.save_heatmap_figure(p, rgb, cam, "root", "Score-CAM", note="a note " * 20)),
            ("c", lambda p: render.save_comparison_figure(p, rgb, gt, pred, maps, CLASSES, COLORS)),
        ):
            img = _assert_figure(draw(tmp_path / f"{name}_{h}x{w}.png"))
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
    rgb, gt, pred, _ = seedling

    def boom(*args, **kwargs):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(render.Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        render.save_error_figure(tmp_path / "err.png", rgb, gt, pred, 1, CLASSES, COLORS)
    assert list(tmp_path.iterdir()) == []


def test_thread_safety(tmp_path, seedling):
    rgb, gt, pred, cam = seedling
    maps = _maps(cam)
    jobs = []
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


# ------------------------------------------------------------------------------------------------
# gallery
# ------------------------------------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.urls.append(attrs["src"])
        elif tag == "a":
            self.urls.append(attrs["href"])
        elif tag in ("script", "link", "iframe"):
            self.scripts += 1


def _dummy_png(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.full((8, 8, 3), 200, np.uint8))
    path.write_bytes(buf.tobytes())
    return path.as_posix()


def test_gallery(tmp_path):
    out = tmp_path / "run"
    evil = "<b>seed & \"root\"</b>.png"
    samples = []
    for k, name in enumerate(["plant 1.png", evil]):
        figs = {}
        for kind in ("tpfpfn", "scorecam", "gradcam"):
            figs[kind] = {}
            for c in ("root", "seed"):
                rel = f"figures/sample{k}/{kind}_{c}.png"
                _dummy_png(out / rel)
                figs[kind][c] = rel
        if k == 1:  # odd characters in a file name must still link correctly
            odd = "figures/sample1/odd #name?.png"
            _dummy_png(out / odd)
            figs["tpfpfn"]["root"] = odd
        comparison = f"figures/sample{k}/comparison.png"
        _dummy_png(out / comparison)
        samples.append({"id": f"sample{k}", "name": name, "figures": figs, "comparison": comparison,
                        "metrics": {"root": {"iou": 0.5, "dice": 2 / 3}, "seed": {"iou": None, "dice": None}}})
    # an absolute path inside the folder is made relative
    samples[0]["figures"]["scorecam"]["seed"] = str(out / samples[0]["figures"]["scorecam"]["seed"])

    index = write_gallery(out, samples, CLASSES, title="Run <1>")
    assert index == out / "index.html" and index.is_file()
    text = index.read_text(encoding="utf-8")
    assert "<b>seed" not in text and "&lt;b&gt;seed &amp; &quot;root&quot;&lt;/b&gt;" in text
    assert "Run &lt;1&gt;" in text
    assert "0.500" in text and "0.667" in text

    parser = _Links()
    parser.feed(text)
    assert parser.scripts == 0  # self-contained: no scripts, stylesheets or frames
    assert len([u for u in parser.urls if not u.startswith("#")]) >= 2 * (3 * 2 * 2 + 2)
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
        if url.startswith("#"):
            assert f'id="{url[1:]}"' in text or url == "#top"
            continue
        assert (out / unquote(parts.path)).is_file(), url
    _no_temporaries(out)

    # the gallery keeps working when the folder is moved
    moved = tmp_path / "moved"
    os.rename(out, moved)
    for url in parser.urls:
        if not url.startswith("#"):
            assert (moved / unquote(url)).is_file()


def test_gallery_refuses_paths_outside(tmp_path):
    outside = tmp_path / "elsewhere.png"
    _dummy_png(outside)
    bad = [{"id": "s", "name": "s", "figures": {"tpfpfn": {"root": str(outside)}}}]
    with pytest.raises(ValueError):
        write_gallery(tmp_path / "run", bad, CLASSES)
    bad = [{"id": "s", "name": "s", "figures": {"tpfpfn": {"root": "../elsewhere.png"}}}]
    with pytest.raises(ValueError):
        write_gallery(tmp_path / "run", bad, CLASSES)
    assert not (tmp_path / "run" / "index.html").exists()
