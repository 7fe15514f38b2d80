"""xai.synth: deterministic synthetic seedlings in the users' data layout."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from xai import data as xdata
from xai import synth
from xai.config import DEFAULT_CLASSES, DEFAULT_PALETTE, load_config

PALETTE = [DEFAULT_PALETTE[c] for c in DEFAULT_CLASSES]
REPO = Path(__file__).resolve().parent.parent
SIZE = (60, 120)  # (width, height): tiny, fast


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_constants_match_xai_data():
    assert (synth.IMAGE_DIR, synth.MASK_DIR, synth.MASK_SUFFIX) == (xdata.IMAGE_DIR, xdata.MASK_DIR, xdata.MASK_SUFFIX)
    assert list(DEFAULT_CLASSES) == ["background", "hypocotyl", "cotyledon", "root", "seed"]
    assert (synth.HYPOCOTYL, synth.COTYLEDON, synth.ROOT, synth.SEED) == (1, 2, 3, 4)  # the phenocyte mask ids


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    synth.make_dataset(tmp_path / "a", 4, seed=7, size=SIZE)
    synth.make_dataset(tmp_path / "b", 4, seed=7, size=SIZE)
    synth.make_dataset(tmp_path / "c", 4, seed=8, size=SIZE)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.startswith("images")]
    assert all(a[k] != c[k] for k in images)


def test_render_is_deterministic_and_seed_dependent():
    r1, m1 = synth.render_seedling(np.random.default_rng(3), (150, 300))
    r2, m2 = synth.render_seedling(np.random.default_rng(3), (150, 300))
    r3, _ = synth.render_seedling(np.random.default_rng(4), (150, 300))
    assert np.array_equal(r1, r2) and np.array_equal(m1, m2)
    assert not np.array_equal(r1, r3)
    assert r1.shape == (300, 150, 3) and r1.dtype == np.uint8
    assert m1.shape == (300, 150) and m1.dtype == np.uint8


def test_layout_and_split_csv(tmp_path):
    n = 20
    summary = synth.make_dataset(tmp_path, n, seed=0, size=SIZE)
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert len(names) == n and all(x.startswith("seedling_") and x.endswith(".png") for x in names)
    for name in names:
        assert xdata.mask_path(tmp_path, name).is_file()
    with (tmp_path / "dataset_split.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0].keys()) == ["img_name", "set"]
    assert sorted(r["img_name"] for r in rows) == names
    sets = [r["set"] for r in rows]
    assert set(sets) == {"train", "val", "test"}
    assert sets.count("train") == 14 and sets.count("val") == 3 and sets.count("test") == 3
    assert summary == {"n": n, "train": 14, "val": 3, "test": 3}
    # The project's reader agrees.
    assert len(xdata.read_split(tmp_path, "val")) == 3


def test_masks_carry_all_classes_and_match_images(tmp_path):
    synth.make_dataset(tmp_path, 3, seed=1, size=SIZE)
    for img_path in sorted((tmp_path / "images").iterdir()):
        rgb = xdata.read_image(img_path)
        ids = xdata.read_mask(xdata.mask_path(tmp_path, img_path.name), PALETTE)
        raw = cv2.imread(str(xdata.mask_path(tmp_path, img_path.name)), cv2.IMREAD_UNCHANGED)
        assert raw is not None and raw.ndim == 2 and raw.dtype == np.uint8  # single-channel id PNG
        assert ids.shape == rgb.shape[:2]
        assert set(np.unique(ids).tolist()) == {0, 1, 2, 3, 4}
        assert (ids == 0).mean() > 0.8  # background elsewhere


def test_render_full_size_all_classes_and_plant_is_where_the_mask_says():
    for i in range(4):
        rgb, mask = synth.render_seedling(np.random.default_rng([0, i]), (300, 600))
        counts = np.bincount(mask.ravel(), minlength=5)
        assert (counts > 0).all()
        # Root pixels are brighter than the strip around them; cotyledons are green.
        grey = rgb.astype(np.float32).mean(2)
        root = mask == synth.ROOT
        near = cv2.dilate(root.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & (mask == 0)
        assert grey[root].mean() > grey[near].mean()
        cot = rgb[mask == synth.COTYLEDON].astype(np.float32)
        assert cot[:, 1].mean() > cot[:, 0].mean() and cot[:, 1].mean() > cot[:, 2].mean()


def test_rgb_masks_round_trip_to_the_same_ids(tmp_path):
    synth.make_dataset(tmp_path / "ids", 3, seed=5, size=SIZE)
    synth.make_dataset(tmp_path / "rgb", 3, seed=5, size=SIZE, rgb_masks=True)
    cfg = load_config(REPO / "configs" / "demo.yaml")
    palette = cfg.class_colors()
    for img_path in sorted((tmp_path / "ids" / "images").iterdir()):
        raw = cv2.imread(str(xdata.mask_path(tmp_path / "rgb", img_path.name)), cv2.IMREAD_UNCHANGED)
        assert raw is not None and raw.ndim == 3 and raw.shape[2] == 3
        ids = xdata.read_mask(xdata.mask_path(tmp_path / "ids", img_path.name), palette)
        from_rgb = xdata.read_mask(xdata.mask_path(tmp_path / "rgb", img_path.name), palette)
        assert np.array_equal(ids, from_rgb)
        assert set(np.unique(from_rgb).tolist()) == {0, 1, 2, 3, 4}
    # Images do not depend on the mask format.
    assert _files(tmp_path / "ids" / "images") == _files(tmp_path / "rgb" / "images")


def test_images_look_like_the_reference_strip(tmp_path):
    """Portrait photographs of the grey strip (aspect as in shared/reference), olive leaves darker."""
    synth.make_dataset(tmp_path, 3, seed=2)
    for img_path in sorted((tmp_path / "images").iterdir()):
        rgb = xdata.read_image(img_path).astype(np.float32)
        mask = xdata.read_mask(xdata.mask_path(tmp_path, img_path.name), PALETTE)
        h, w = rgb.shape[:2]
        assert 500 <= h <= 700 and 0.30 <= w / h <= 0.50
        centre = slice(int(w * 0.3), int(w * 0.7))
        grey = np.median(rgb[:, centre][mask[:, centre] == 0], axis=0)
        assert 120 <= grey.mean() <= 210 and grey.max() - grey.min() < 15  # light, nearly neutral grey
        leaf = np.median(rgb[mask == synth.COTYLEDON], axis=0)
        assert leaf.mean() < grey.mean() - 8 and leaf[1] > leaf[2] + 5  # darker and olive (G > B)


def test_fixed_size_option(tmp_path):
    synth.make_dataset(tmp_path, 2, seed=0, size=(80, 150))
    for img_path in (tmp_path / "images").iterdir():
        assert xdata.read_image(img_path).shape == (150, 80, 3)


def test_small_n_splits():
    rng = np.random.default_rng(0)
    assert synth._split_assignment(1, rng) == ["train"]
    assert sorted(synth._split_assignment(2, rng)) == ["train", "val"]
    assert sorted(synth._split_assignment(3, rng)) == ["test", "train", "val"]


def test_cli_writes_dataset_and_refuses_bad_input(tmp_path):
    out = tmp_path / "d"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xai.synth",
            "--out",
            str(out),
            "--n",
            "3",
            "--seed",
            "1",
            "--size",
            "40",
            "80",
            "--rgb_masks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1 and "wrote 3" in proc.stdout
    assert (out / "dataset_split.csv").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "xai.synth", "--out", str(tmp_path / "e"), "--n", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("size", [(16, 32), (31, 64)])
def test_tiny_sizes_render(size):
    rgb, mask = synth.render_seedling(np.random.default_rng(0), size)
    assert rgb.shape == (size[1], size[0], 3) and mask.max() <= 4
