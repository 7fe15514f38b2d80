"""A dataset of bad and odd inputs in the users' layout (issue: "Bad input, fuzzed").

Every image has a mask unless the case is about masks; `EXPECTED` says which samples a run must explain
and which it must skip (with the words its one line must contain).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

PALETTE = [(0, 0, 0), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255)]


def _seedling(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal(120, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    ids = np.zeros((h, w), np.uint8)
    ids[h // 4 : 3 * h // 4, w // 2 - max(1, w // 20) : w // 2 + max(1, w // 20) + 1] = 1
    ids[h // 5 : h // 4, w // 3 : 2 * w // 3] = 3
    rgb[ids == 1] = (230, 230, 215)
    rgb[ids == 3] = (60, 150, 40)
    return rgb, ids


def _png(path: Path, arr: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    path.write_bytes(buf.tobytes())


def _rgb_png(path: Path, rgb: np.ndarray) -> None:
    _png(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_fuzz_dataset(root: Path) -> dict[str, str | None]:
    """Write the dataset; return {image name: None if it must be explained, else words of its skip line}."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    expected: dict[str, str | None] = {}

    def add(name: str, rgb: np.ndarray | None, ids: np.ndarray | None, why: str | None = None) -> None:
        if rgb is not None:
            _rgb_png(images / name, rgb)
        if ids is not None:
            _png(masks / f"{Path(name).stem}_mask.png", ids)
        expected[name] = why

    rgb, ids = _seedling(96, 48)
    add("plain.png", rgb, ids)
    add("constant.png", np.full((96, 48, 3), 128, np.uint8), ids)
    add("black.png", np.zeros((96, 48, 3), np.uint8), ids)
    add("white.png", np.full((96, 48, 3), 255, np.uint8), ids)
    add("noise.png", np.random.default_rng(1).integers(0, 256, (96, 48, 3), dtype=np.uint8), ids)
    add("one_pixel.png", np.full((1, 1, 3), 200, np.uint8), np.ones((1, 1), np.uint8))
    wide_rgb, wide_ids = _seedling(20, 3000, seed=2)
    add("wide_3000x20.png", wide_rgb, wide_ids)
    # colour types and depths that photographs come in
    _png(images / "gray.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    _png(masks / "gray_mask.png", ids)
    expected["gray.png"] = None
    _png(images / "rgba.png", np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.full((96, 48), 255, np.uint8)]))
    _png(masks / "rgba_mask.png", ids)
    expected["rgba.png"] = None
    _png(images / "deep16.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    _png(masks / "deep16_mask.png", ids)
    expected["deep16.png"] = None
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(images / "palette.png")
    _png(masks / "palette_mask.png", ids)
    expected["palette.png"] = None
    Image.fromarray(rgb).convert("CMYK").save(images / "cmyk.jpg", "JPEG")
    _png(masks / "cmyk_mask.png", ids)
    expected["cmyk.jpg"] = None
    # files that are not images
    (images / "empty.png").write_bytes(b"")
    _png(masks / "empty_mask.png", ids)
    expected["empty.png"] = "empty.png"
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    (images / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _png(masks / "truncated_mask.png", ids)
    expected["truncated.png"] = "truncated.png"
    (images / "text.png").write_text("this is not a picture\n")
    _png(masks / "text_mask.png", ids)
    expected["text.png"] = "text.png"
    # masks
    bad_colour = np.array(PALETTE, np.uint8)[ids]
    bad_colour[0, 0] = (1, 2, 3)
    add("mask_colour.png", rgb, None, "RGB(1, 2, 3)")
    _rgb_png(masks / "mask_colour_mask.png", bad_colour)
    add("mask_size.png", rgb, ids[:50], "mask_size_mask.png")
    add("mask16.png", rgb, None)
    _png(masks / "mask16_mask.png", ids.astype(np.uint16))
    add("mask_missing.png", rgb, None, "mask not found")
    # the split file: a BOM, an extra column, blank lines, a duplicate row, rows of other sets
    rows = [(name, "test", "x") for name in expected]
    lines = (
        ["img_name,set,notes"]
        + [",".join(r) for r in rows[:5]]
        + ["", ",".join(rows[5])]
        + [",".join(r) for r in rows[6:]]
        + [",".join(rows[0]), "somewhere_else.png,holdout,y", "  ,test,blank name"]
    )
    (root / "dataset_split.csv").write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    return expected


def write_split_without_set_column(root: Path) -> None:
    with open(root / "dataset_split.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["img_name", "subset"], ["plain.png", "test"]])
