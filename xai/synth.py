"""Synthetic seedling photographs with exact masks, in the users' data layout.

    python -m xai.synth --out data/demo --n 240 --seed 0 [--size W H] [--rgb_masks]

Each image is a portrait photograph (about 300x600 px unless --size is given) of one seedling on a
light-grey translucent vertical strip with dark surroundings on both sides: a long, thin, whitish
wavy root going down, a short pale-green hypocotyl above the brown seed coat, two small green
cotyledons at the top; with condensation blotches, droplets/bubbles, faint horizontal holder lines,
a lighting gradient, a little blur and sensor noise. The mask is drawn with the same geometry:
0 background, 1 root, 2 hypocotyl, 3 cotyledon, 4 seed (the default class order of xai.config).

Everything comes from numpy Generators seeded by (seed, image index): the same seed gives the same
bytes. Masks are single-channel id PNGs, or RGB colour masks with the config palette (--rgb_masks).
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import DEFAULT_CLASSES, DEFAULT_PALETTE
from .errors import XAIError, exit_with_one_line

# The users' layout, as in xai.data (not imported from there: it pulls in torch, which costs seconds).
IMAGE_DIR, MASK_DIR, MASK_SUFFIX = "images", "masks", "_mask.png"

BACKGROUND, HYPOCOTYL, COTYLEDON, ROOT, SEED = range(5)  # the ids of the users' masks (xai.config)
DEFAULT_SIZE = (300, 600)  # (width, height)
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


_SHIFT = 4  # cv2 sub-pixel drawing: coordinates carry 4 fractional bits
_ONE = 1 << _SHIFT
# Masks cover what is visible: the anti-aliased, slightly blurred edge adds about half a pixel each side.
_MASK_GROW = 1  # px added to a tube's thickness in the mask


def _grow(axes: tuple[int, int]) -> tuple[int, int]:
    """Ellipse half-axes (in 1/_ONE px) grown by half a pixel, as _MASK_GROW does for tubes."""
    return axes[0] + _ONE // 2, axes[1] + _ONE // 2


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a small random grid upsampled with cubic interpolation."""
    grid = rng.uniform(-1.0, 1.0, size=(cells[1], cells[0])).astype(np.float32)
    return np.clip(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


def _draw_tube(
    canvas: np.ndarray | None,
    mask: np.ndarray | None,
    path: np.ndarray,
    widths: np.ndarray,
    colour: Sequence[float],
    class_id: int,
) -> None:
    """A tube along `path` (N, 2) whose width varies per point: round-capped segments.

    Drawn anti-aliased in `colour` on `canvas` and with `class_id` on `mask` (either may be None).
    """
    for i in range(len(path) - 1):
        t = max(1, int(round((widths[i] + widths[i + 1]) / 2)))
        p0 = tuple(int(v) for v in np.round(path[i] * _ONE))
        p1 = tuple(int(v) for v in np.round(path[i + 1] * _ONE))
        if canvas is not None:
            cv2.line(canvas, p0, p1, colour, t, cv2.LINE_AA, _SHIFT)
        if mask is not None:
            cv2.line(mask, p0, p1, class_id, t + _MASK_GROW, cv2.LINE_8, _SHIFT)


def _background(rng: np.random.Generator, h: int, w: int, s: float) -> tuple[np.ndarray, int, int]:
    """Float32 HxWx3 RGB background: dark surroundings and the light translucent strip; strip x-range."""
    strip_w = int(round(w * _u(rng, 0.50, 0.72)))
    x0 = int(round((w - strip_w) / 2 + _u(rng, -0.08, 0.08) * w))
    x0 = int(np.clip(x0, 2, w - strip_w - 2))
    x1 = x0 + strip_w
    xs = (np.arange(w, dtype=np.float32) - x0) / strip_w - 0.5  # -0.5..0.5 across the strip
    ys = np.arange(h, dtype=np.float32)[:, None] / h - 0.5

    # Dark surroundings with a little texture (luminance only; colour is added at the end).
    dark = _u(rng, 8, 45)
    surround = dark + _smooth_noise(rng, h, w, (4, 8)) * _u(rng, 2, 10)
    # The strip: light grey, a lighting gradient in a random direction, soft large-scale shading,
    # and condensation (darker mottled blotches, stronger towards one side).
    base = _u(rng, 168, 205)
    ang = _u(rng, 0, 2 * np.pi)
    strip = base + (np.cos(ang) * xs[None, :] + np.sin(ang) * ys) * _u(rng, 10, 35)
    strip += _smooth_noise(rng, h, w, (5, 5)) * _u(rng, 3, 9)
    blot = _smooth_noise(rng, h, w, (int(_u(rng, 14, 26)), int(_u(rng, 20, 36))))
    side = np.clip(xs * (1 if rng.random() < 0.5 else -1) * 2.5 + _u(rng, -0.3, 0.6), 0, 1)
    strip -= np.clip(blot, 0, 1) ** 1.5 * side[None, :] * _u(rng, 8, 26)
    # Soft strip edges; the strip's border catches a little light.
    edge = ((np.arange(w) >= x0) & (np.arange(w) < x1)).astype(np.float32)[None, :]
    k = max(3, int(round(3 * s)) | 1)
    edge = cv2.GaussianBlur(edge, (k, 1), 0).astype(np.float32)
    lum = (surround + (strip - surround) * edge).astype(np.float32)
    rim = np.zeros(w, np.float32)
    rim[[x0, x1 - 1]] = -0.1 * base
    lum += rim[None, :]
    cast = rng.uniform(-4, 4, size=3).astype(np.float32)
    tint = np.array([_u(rng, -5, 3), _u(rng, -2, 4), _u(rng, -1, 6)], np.float32)  # slightly bluish grey
    colour = cast[None, :] + (tint - cast)[None, :] * edge[0][:, None]  # (w, 3)
    img = lum[:, :, None] + colour[None, :, :]
    return img.astype(np.float32, copy=False), x0, x1


def _holder_lines(rng: np.random.Generator, img: np.ndarray, x0: int, x1: int, h: int, s: float) -> None:
    """Faint horizontal holder lines across the strip: two thin light lines with a darker one between."""
    n = int(rng.integers(1, 4))
    ys = np.sort(rng.uniform(0.05, 0.95, size=n)) * h
    for y in ys:
        gap = max(2, int(round(_u(rng, 3, 6) * s)))
        bright = _u(rng, 12, 35)
        y = int(y)
        ref = img[y, (x0 + x1) // 2].astype(np.float64)
        for yy in (y, y + gap):
            cv2.line(img, (x0, yy), (x1 - 1, yy), tuple(ref + bright), 1, cv2.LINE_AA)
        cv2.line(img, (x0, y + gap // 2), (x1 - 1, y + gap // 2), tuple(ref - bright * 0.5), 1, cv2.LINE_AA)


def _droplets(rng: np.random.Generator, img: np.ndarray, x0: int, x1: int, h: int, s: float) -> None:
    """Droplets/bubbles on the strip: a darker ring with a light highlight (background class)."""
    for _ in range(int(rng.integers(2, 9))):
        r = _u(rng, 2, 9) * s
        cx, cy = _u(rng, x0 + r, x1 - r), _u(rng, 0, h)
        c = (int(cx * _ONE), int(cy * _ONE))
        rr = max(1, int(r * _ONE))
        col = img[int(np.clip(cy, 0, h - 1)), int(np.clip(cx, 0, img.shape[1] - 1))].astype(np.float64)
        cv2.circle(img, c, rr, tuple(col - _u(rng, 8, 22)), max(1, int(round(s))), cv2.LINE_AA, _SHIFT)
        hc = (int((cx - r * 0.35) * _ONE), int((cy - r * 0.35) * _ONE))
        cv2.circle(img, hc, max(1, int(r * 0.3 * _ONE)), tuple(col + _u(rng, 10, 30)), -1, cv2.LINE_AA, _SHIFT)


@dataclass
class _Seed:
    """Where the seed lies (centre, half-axes, angle): the plant grows from it."""

    x: float
    y: float
    a: float
    b: float
    angle: float


def _draw_root(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, seed: _Seed, x0: int, x1: int, s: float):
    """The root: from the seed downwards, wavy, slowly drifting, tapering towards the tip, translucent."""
    h, w = mask.shape
    strip_w = x1 - x0
    length = min(_u(rng, 0.40, 0.82) * h, h - seed.y - 6 * s)
    n = max(12, int(length / (4 * s)))
    t = np.linspace(0.0, 1.0, n)
    wave = np.zeros(n)
    for _ in range(3):
        amp = _u(rng, 1.0, 7.0) * s
        freq = _u(rng, 0.6, 4.0)
        wave += amp * np.sin(2 * np.pi * freq * t + _u(rng, 0, 2 * np.pi))
    drift = _u(rng, -0.18, 0.18) * strip_w * t ** _u(rng, 0.8, 2.0)
    rx = np.clip(seed.x + wave - wave[0] + drift, x0 + 6 * s, x1 - 6 * s)
    ry = seed.y + seed.b * 0.5 + t * length
    root = np.stack([rx, ry], axis=1)
    root_w0 = _u(rng, 8.0, 11.0) * s
    root_w = root_w0 * (1.0 - 0.4 * t**2)
    root_col = np.array([_u(rng, 215, 240)] * 3) + rng.uniform(-5, 5, 3)
    # A coverage map blended over the strip within the root's bounding box.
    pad = int(np.ceil(root_w0)) + 2
    bx0, bx1 = max(0, int(rx.min()) - pad), min(w, int(np.ceil(rx.max())) + pad + 1)
    by0, by1 = max(0, int(ry.min()) - pad), min(h, int(np.ceil(ry.max())) + pad + 1)
    off = np.array([bx0, by0], np.float64)
    cov = np.zeros((by1 - by0, bx1 - bx0), np.float32)
    _draw_tube(cov, None, root - off, root_w, (1.0,), ROOT)
    core = np.zeros_like(cov)  # a faint brighter core along the root
    _draw_tube(core, None, root[: int(n * 0.9)] - off, np.maximum(1.0, root_w * 0.35), (1.0,), ROOT)
    _draw_tube(None, mask, root, root_w, (), ROOT)
    alpha = _u(rng, 0.55, 0.85)
    sub = img[by0:by1, bx0:bx1]  # a view: blends in place
    sub += (cov * alpha)[..., None] * (root_col.astype(np.float32) - sub)
    sub += (core * 0.35)[..., None] * (250.0 - sub)


def _draw_hypocotyl(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, seed: _Seed, s: float):
    """A short pale-green tube from the seed upwards (sometimes hooked); returns its tip and lean."""
    hl = seed.b + _u(rng, 12, 34) * s  # from the seed's centre: 12-34 px visible
    hang = np.deg2rad(_u(rng, -35, 35))  # lean from vertical
    bend = _u(rng, -1.0, 1.0)
    m = 8
    ang = hang + bend * np.linspace(0, 1, m)
    hx = seed.x + np.cumsum(np.sin(ang)) * hl / m
    hy = seed.y - np.cumsum(np.cos(ang)) * hl / m
    hypo = np.concatenate([[[seed.x, seed.y]], np.stack([hx, hy], axis=1)])
    hypo_w = np.full(len(hypo), _u(rng, 9.0, 12.0) * s)
    hypo_col = (_u(rng, 150, 190), _u(rng, 180, 215), _u(rng, 95, 135))
    _draw_tube(img, mask, hypo, hypo_w, hypo_col, HYPOCOTYL)
    return hypo[-1], float(np.rad2deg(ang[-1]))


def _draw_cotyledons(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, tip: np.ndarray, up: float, s: float):
    """Two small green leaves at the hypocotyl's tip (lean `up`, degrees from vertical), spreading or folded."""
    spread = _u(rng, 15, 75)
    for side in (-1, 1):
        a = np.deg2rad(up + side * spread + _u(rng, -12, 12))
        length_c = _u(rng, 13, 22) * s
        width_c = _u(rng, 5.0, 8.0) * s
        cx = tip[0] + np.sin(a) * length_c * 0.9
        cy = tip[1] - np.cos(a) * length_c * 0.9
        angle = float(np.rad2deg(a)) + 90.0  # ellipse major axis along the leaf direction
        centre = (int(round(cx * _ONE)), int(round(cy * _ONE)))
        axes = (int(round(length_c * _ONE)), int(round(width_c * _ONE)))
        g = _u(rng, 105, 150)
        col = (g * _u(rng, 0.45, 0.75), g, g * _u(rng, 0.25, 0.45))
        cv2.ellipse(img, centre, axes, angle, 0, 360, col, -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(mask, centre, _grow(axes), angle, 0, 360, COTYLEDON, -1, cv2.LINE_8, _SHIFT)
        shade = tuple(c * 0.8 for c in col)  # darker midrib/shading along one edge
        cv2.ellipse(img, centre, (axes[0], max(1, axes[1] // 3)), angle, 0, 360, shade, -1, cv2.LINE_AA, _SHIFT)


def _draw_seed_coat(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, seed: _Seed) -> None:
    """A brownish ellipse at the junction of root and hypocotyl, drawn on top, with a highlight."""
    centre = (int(round(seed.x * _ONE)), int(round(seed.y * _ONE)))
    axes = (int(round(seed.a * _ONE)), int(round(seed.b * _ONE)))
    brown = (_u(rng, 120, 165), _u(rng, 80, 110), _u(rng, 45, 70))
    cv2.ellipse(img, centre, axes, seed.angle, 0, 360, brown, -1, cv2.LINE_AA, _SHIFT)
    cv2.ellipse(mask, centre, _grow(axes), seed.angle, 0, 360, SEED, -1, cv2.LINE_8, _SHIFT)
    hl_c = (int(round((seed.x - seed.a * 0.3) * _ONE)), int(round((seed.y - seed.b * 0.3) * _ONE)))
    light = tuple(c * 1.25 for c in brown)
    cv2.ellipse(
        img, hl_c, (max(1, axes[0] // 3), max(1, axes[1] // 3)), seed.angle, 0, 360, light, -1, cv2.LINE_AA, _SHIFT
    )


def _camera(rng: np.random.Generator, img: np.ndarray, s: float) -> np.ndarray:
    """A little blur, a global exposure change, sensor noise; uint8 RGB."""
    k = 3 if s < 1.5 else 5
    img = cv2.GaussianBlur(img, (k, k), _u(rng, 0.4, 1.0)).astype(np.float32)
    img *= np.float32(_u(rng, 0.88, 1.10))
    img += np.float32(_u(rng, -8, 8))
    noise = rng.standard_normal(size=img.shape, dtype=np.float32)
    noise *= _u(rng, 2.0, 6.0)
    img += noise
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def render_seedling(rng: np.random.Generator, size: tuple[int, int] = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic photograph and its mask: (HxWx3 RGB uint8, HxW uint8 class ids 0..4).

    size is (width, height). Geometry scales with the height (designed at 600 px).
    """
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 32:
        raise XAIError(f"image size {w}x{h} is too small (at least 16x32)")
    s = h / 600.0
    img, x0, x1 = _background(rng, h, w, s)
    mask = np.zeros((h, w), np.uint8)
    _holder_lines(rng, img, x0, x1, h, s)
    _droplets(rng, img, x0, x1, h, s)
    margin = 0.2 * (x1 - x0)  # the seed lies in the upper part of the strip, inside it
    sx, sy = _u(rng, x0 + margin, x1 - margin), _u(rng, 0.10, 0.30) * h
    seed = _Seed(sx, sy, _u(rng, 9, 13) * s, _u(rng, 6.5, 9) * s, _u(rng, 0, 180))
    _draw_root(rng, img, mask, seed, x0, x1, s)
    tip, up = _draw_hypocotyl(rng, img, mask, seed, s)
    _draw_cotyledons(rng, img, mask, tip, up, s)
    _draw_seed_coat(rng, img, mask, seed)
    return _camera(rng, img, s), mask


def _split_assignment(n: int, rng: np.random.Generator) -> list[str]:
    """Deterministic ~70/15/15 train/val/test; every split non-empty once n >= 3."""
    if n <= 0:
        return []
    n_val = int(round(n * SPLIT_FRACTIONS[1]))
    n_test = int(round(n * SPLIT_FRACTIONS[2]))
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    elif n == 2:
        n_val, n_test = 1, 0
    else:
        n_val, n_test = 0, 0
    labels = ["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test
    order = rng.permutation(n)
    return [labels[int(j)] for j in np.argsort(order)]


def _image_size(rng: np.random.Generator, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return int(size[0]), int(size[1])
    h = int(rng.integers(560, 641))
    w = int(round(h * _u(rng, 0.46, 0.5)))
    return w, h


def _encode_png(arr: np.ndarray, fast: bool = False) -> bytes:
    """PNG bytes; `fast` (for noisy photographs): Huffman-only deflate, about twice as fast, smaller."""
    params = (
        [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
        if fast
        else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    )
    ok, buf = cv2.imencode(".png", arr, params)
    if not ok:
        raise XAIError("could not encode a PNG")
    return buf.tobytes()


def make_dataset(
    out: str | Path, n: int, seed: int, size: tuple[int, int] | None = None, rgb_masks: bool = False
) -> dict:
    """Write n synthetic samples and dataset_split.csv under `out`; return a small summary dict.

    size (width, height) fixes every image's size; None varies it around 300x600 (portrait).
    Files of an earlier, larger dataset in `out` are left alone (the split file lists only these n).
    """
    out = Path(out)
    if n < 1:
        raise XAIError(f"--n must be at least 1 (got {n})")
    if seed < 0:
        raise XAIError(f"--seed must be >= 0 (got {seed})")
    if size is not None and (size[0] < 16 or size[1] < 32):
        raise XAIError(f"--size {size[0]} {size[1]} is too small (at least 16 32)")
    img_dir, mask_dir = out / IMAGE_DIR, out / MASK_DIR
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise XAIError(f"cannot create {out}: {exc.strerror}") from None
    try:
        return _write_samples(out, n, seed, size, rgb_masks)
    except OSError as exc:
        raise XAIError(f"cannot write to {out}: {exc.strerror or exc}") from None


def _write_samples(out: Path, n: int, seed: int, size: tuple[int, int] | None, rgb_masks: bool) -> dict:
    img_dir, mask_dir = out / IMAGE_DIR, out / MASK_DIR
    palette = np.array([DEFAULT_PALETTE[c] for c in DEFAULT_CLASSES], np.uint8)
    palette_bgr = palette[:, ::-1].copy()  # cv2.imencode wants BGR
    width = max(4, len(str(n - 1)))
    names = []
    for i in range(n):
        rng = np.random.default_rng([int(seed), i])
        wh = _image_size(rng, size)
        rgb, mask = render_seedling(rng, wh)
        name = f"seedling_{i:0{width}d}.png"
        names.append(name)
        (img_dir / name).write_bytes(_encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), fast=True))
        mask_img = palette_bgr[mask] if rgb_masks else mask
        (mask_dir / f"{Path(name).stem}{MASK_SUFFIX}").write_bytes(_encode_png(mask_img))
    sets = _split_assignment(n, np.random.default_rng([int(seed), 1 << 20]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["img_name", "set"])
    writer.writerows(zip(names, sets, strict=True))
    (out / "dataset_split.csv").write_text(buf.getvalue())
    return {"n": n, "train": sets.count("train"), "val": sets.count("val"), "test": sets.count("test")}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m xai.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="dataset folder to write (images/, masks/, dataset_split.csv)")
    ap.add_argument("--n", type=int, default=240, help="number of samples (default 240)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    ap.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="fixed image size (default: varied around 300x600)",
    )
    ap.add_argument("--rgb_masks", action="store_true", help="write RGB colour masks with the config palette")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    summary = make_dataset(args.out, args.n, args.seed, tuple(args.size) if args.size else None, args.rgb_masks)
    print(
        f"wrote {summary['n']} synthetic seedlings to {args.out} (train {summary['train']}, val {summary['val']}, "
        f"test {summary['test']}; {'rgb' if args.rgb_masks else 'id'} masks) in {time.perf_counter() - t0:.1f}s"
    )
    return 0


if __name__ == "__main__":
    exit_with_one_line(main)
