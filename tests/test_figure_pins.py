"""The exact pixels of the error and comparison figures, pinned where they were recorded.

Rendering depends on matplotlib, its FreeType and OpenCV, so the hashes hold for the versions in
RECORDED; elsewhere the test is skipped (record again with `python -m tests.test_figure_pins`). They
show that a refactoring changes no pixel of any panel, title, legend, notice or colour bar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import matplotlib
import numpy as np
import pytest
from matplotlib import ft2font

from xai.figures import save_comparison_figure, save_error_figure

CLASSES = ["background", "root", "hypocotyl", "cotyledon", "seed"]
COLORS = [(0, 0, 0), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255)]
RECORDED = ("3.11.2", "2.14.3", "5.1.0")  # matplotlib, FreeType, OpenCV
VERSIONS = (matplotlib.__version__, ft2font.__freetype_version__, cv2.__version__)


def _sample(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """rgb, gt (with ignore-labelled pixels), pred and a smooth map of an h×w photograph."""
    rgb = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    gt = np.zeros((h, w), np.uint8)
    gt[h // 4 : h // 2, w // 3 : w // 2] = 1
    gt[h // 2 :, : w // 4] = 2
    gt[:3, :3] = 255
    pred = np.where(gt == 255, 0, gt).astype(np.uint8)
    pred[h // 3 : h // 2 + 4, w // 3 : w // 2 + 3] = 1
    pred[-4:, -4:] = 3
    yy, xx = np.mgrid[0:h, 0:w]
    cam = np.exp(-(((xx - w / 2) / 10.0) ** 2 + ((yy - h / 2) / 25.0) ** 2)).astype(np.float32)
    return rgb, gt, pred, cam


def _error(**options: Any) -> Callable[[Path], Path]:
    def draw(path: Path) -> Path:
        kw = dict(options)
        rgb, gt, pred, _ = _sample(*kw.pop("hw", (120, 60)))
        gt = kw.pop("gt", gt)
        return save_error_figure(path, rgb, gt, pred, kw.pop("class_idx"), CLASSES, COLORS, **kw)

    return draw


def _comparison(**options: Any) -> Callable[[Path], Path]:
    def draw(path: Path) -> Path:
        kw = dict(options)
        rgb, gt, pred, cam = _sample(*kw.pop("hw", (120, 60)))
        maps = {"A": np.stack([cam] * 5), "B": [None, cam, None, cam * 0.5, cam], "C": None}
        gt = kw.pop("gt", gt)
        return save_comparison_figure(path, rgb, gt, pred, kw.pop("maps", maps), CLASSES, COLORS, **kw)

    return draw


CASES: dict[str, Callable[[Path], Path]] = {
    "error": _error(class_idx=1),
    "error_wide_no_gt": _error(hw=(40, 160), gt=None, class_idx="root"),
    "error_absent_titled": _error(hw=(64, 64), class_idx=4, title="custom title", alpha=0.3, dpi=72),
    "comparison": _comparison(),
    "comparison_wide_no_gt_notes": _comparison(
        hw=(40, 160), gt=None, classes_to_show=["root", 2], notes={("B", "background"): "skipped", "C": {"root": "x"}}
    ),
    "comparison_absent_options": _comparison(
        hw=(64, 64), classes_to_show=[4, 0], title="T", cmap="viridis", alpha=0.3, contour_on_maps=False, dpi=72
    ),
    "comparison_no_methods": _comparison(maps={}, classes_to_show=[1]),
}

PINNED = {
    "comparison": "ec2b1dfa1d9a57ed9964",
    "comparison_absent_options": "afc606a9704817b805ca",
    "comparison_no_methods": "9059e88b4a73b951eb82",
    "comparison_wide_no_gt_notes": "a1680d1d1ed47c93caa9",
    "error": "cedd5f50b316ddff33a1",
    "error_absent_titled": "8122ef91f4984d8b361c",
    "error_wide_no_gt": "5853f1840f6c660d4990",
}


def _pixels_hash(path: Path) -> str:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return hashlib.sha256(f"{img.shape}".encode() + img.tobytes()).hexdigest()[:20]


@pytest.mark.skipif(VERSIONS != RECORDED, reason=f"pixels recorded with {RECORDED}, these are {VERSIONS}")
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_figure_is_pixel_for_pixel_as_recorded(name, tmp_path):
    assert _pixels_hash(CASES[name](tmp_path / f"{name}.png")) == PINNED[name]


if __name__ == "__main__":  # print the hashes of this environment (to record them again)
    import tempfile

    print(f"RECORDED = {VERSIONS}")
    with tempfile.TemporaryDirectory() as folder:
        print({name: _pixels_hash(draw(Path(folder) / f"{name}.png")) for name, draw in sorted(CASES.items())})
