#!/usr/bin/env python
"""How well the demo model segments a real seedling: shared/reference/real_seedling_example.png.

The picture holds the researchers' preprocessed input (left panel: a portrait photograph letterboxed to
512x512, black on both sides) and their own model's predicted classes (right panel, coloured by id:
1 green, 2 yellow, 3 cyan, 4 magenta). The right panel is taken as pseudo ground truth in the phenocyte
ids (1 hypocotyl, 2 cotyledon, 3 root, 4 seed). The photograph is the left panel's strip (the columns
that are not padding); the model explains it as any photograph (its config's preprocessing), and its
prediction, mapped back onto the strip, is compared with the pseudo ground truth class by class
(names matched, whatever the model's ids). Never trained on: the picture is only read here.

    .venv/bin/python bench/real_seedling.py --model_path best_model_FPN.safetensors [--figure docs/real_seedling.jpg]
    .venv/bin/python bench/real_seedling.py --stats        # the measured statistics the generator follows
    .venv/bin/python bench/real_seedling.py --synthetic data/demo   # the same over the synthetic test split
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference" / "real_seedling_example.png"
PHENOCYTE = ("background", "hypocotyl", "cotyledon", "root", "seed")
COLOURS = np.array([(0, 0, 0), (0, 255, 0), (255, 255, 0), (0, 255, 255), (255, 0, 255)])
PANELS = {"left": (52, 606, 12, 566), "right": (52, 606, 624, 1178)}  # rows, cols inside the axes frames


def reference(path: Path = REFERENCE) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(the 512x512 preprocessed photograph, its 512x512 pseudo ground truth in the phenocyte ids, the
    strip's columns [x0, x1) at 512)."""
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    y0, y1, x0, x1 = PANELS["left"]
    photo = cv2.resize(img[y0:y1, x0:x1], (512, 512), interpolation=cv2.INTER_AREA)
    y0, y1, x0, x1 = PANELS["right"]
    shown = img[y0:y1, x0:x1].astype(np.int64)
    labels = (((shown[..., None, :] - COLOURS[None, None]) ** 2).sum(-1)).argmin(-1).astype(np.uint8)
    gt = cv2.resize(labels, (512, 512), interpolation=cv2.INTER_NEAREST)
    columns = np.nonzero(np.median(photo.mean(2), axis=0) > 40)[0]
    return photo, gt, (int(columns[0]), int(columns[-1]) + 1)


def statistics() -> dict[str, object]:
    """What the real photograph shows, at the 512x512 input (what the synthetic generator follows)."""
    photo, gt, (x0, x1) = reference()
    return measure(photo, gt, x0, x1)


def measure(photo: np.ndarray, gt: np.ndarray, x0: int, x1: int) -> dict[str, object]:
    """The statistics of one 512x512 centred letterbox (photo RGB, gt phenocyte ids, strip columns)."""
    strip = photo[:, x0 + 3 : x1 - 3].astype(np.float64)
    lum = strip.mean(2)
    rows = np.median(lum, axis=1)
    lines = np.nonzero(rows - np.median(rows) > 6)[0]
    root_rows = [int((gt[y] == 3).sum()) for y in range(512) if (gt[y] == 3).any()]
    under = {PHENOCYTE[c]: np.median(photo[gt == c], axis=0).round().tolist() for c in range(1, 5) if (gt == c).any()}
    ys, xs = np.nonzero(gt > 0)
    root_y = np.nonzero((gt == 3).any(1))[0]
    core = [
        photo[y, x0:x1][(gt[y, x0:x1] == 3)].mean(1).max() - np.median(photo[y, x0:x1].mean(1))
        for y in root_y[20:-20:10]
    ]
    return {
        "strip_columns": [x0, x1],
        "strip_width_share": round((x1 - x0) / 512, 3),
        "strip_rgb_median": np.median(strip.reshape(-1, 3), axis=0).round(1).tolist(),
        "strip_luminance_p5_p50_p95": np.percentile(lum, [5, 50, 95]).round(1).tolist(),
        "strip_right_minus_left_third": round(
            float(lum[:, -lum.shape[1] // 3 :].mean() - lum[:, : lum.shape[1] // 3].mean()), 2
        ),
        "holder_line_rows": lines.tolist(),
        "mask_root_width_px": float(np.median(root_rows)) if root_rows else 0.0,
        "root_rows": [int(root_y[0]), int(root_y[-1])] if len(root_y) else [],
        "root_brightest_above_strip": round(float(np.median(core)), 1) if core else 0.0,
        "seedling_rows": [int(ys.min()), int(ys.max())],
        "seedling_columns": [int(xs.min()), int(xs.max())],
        "class_pixels": {PHENOCYTE[c]: int((gt == c).sum()) for c in range(1, 5)},
        "photo_rgb_under_class": under,
    }


def synthetic_statistics(root: Path, n: int) -> dict[str, object]:
    """The same statistics over n synthetic test photographs (each letterboxed to 512x512, centred):
    medians over the images, and the 10th-90th percentile range."""
    from xai.config import load_config
    from xai.data import Letterbox, mask_path, read_image, read_mask, read_split

    cfg = load_config("demo")
    per_image = []
    for name in read_split(root, "test", cfg.split_file)[:n]:
        rgb, mask = read_image(root / "images" / name), read_mask(mask_path(root, name), cfg.class_colors())
        box = Letterbox.fit(rgb.shape[:2], (512, 512), cfg.preprocess())
        photo, gt = box.apply_image(rgb), box.apply_mask(mask)
        left = box.offset[1]
        per_image.append(measure(photo, gt, left, left + box.resized_hw[1]))
    scalars = {
        "strip_width_share": [d["strip_width_share"] for d in per_image],
        "strip_luminance_p50": [d["strip_luminance_p5_p50_p95"][1] for d in per_image],
        "strip_luminance_p95_minus_p5": [np.subtract(*d["strip_luminance_p5_p50_p95"][::-2]) for d in per_image],
        "mask_root_width_px": [d["mask_root_width_px"] for d in per_image],
        "root_brightest_above_strip": [d["root_brightest_above_strip"] for d in per_image],
        "root_length_share": [np.subtract(*d["root_rows"][::-1]) / 512 for d in per_image if d["root_rows"]],
        **{f"{c}_pixels": [d["class_pixels"][c] for d in per_image] for c in PHENOCYTE[1:]},
    }
    return {
        "images": len(per_image),
        **{k: [round(float(np.percentile(v, q)), 3) for q in (10, 50, 90)] for k, v in scalars.items()},
    }


def iou(model_path: str, config: str | None, figure: str | None) -> dict[str, object]:
    import torch

    from xai.checkpoint import load_model
    from xai.config import load_config
    from xai.data import Letterbox, Preprocessing, encoder_normalization, normalize

    photo, gt, (x0, x1) = reference()
    cfg = load_config(config)
    loaded = load_model(model_path, classes=list(cfg.classes))
    names = list(loaded.classes or cfg.classes)
    pre = Preprocessing(**loaded.preprocessing) if loaded.preprocessing else cfg.preprocess()
    size = tuple(loaded.img_size or cfg.img_size)
    mean, std = (loaded.mean, loaded.std) if loaded.mean else encoder_normalization(loaded.encoder or cfg.encoder)
    strip = np.ascontiguousarray(photo[:, x0:x1])
    box = Letterbox.fit(strip.shape[:2], (size[0], size[1]), pre)
    x = normalize(box.apply_image(strip), mean, std)[None]
    with torch.inference_mode():
        pred = loaded.model.eval()(x).argmax(1)[0].numpy().astype(np.uint8)
    ours = box.to_original(pred, nearest=True)
    truth = gt[:, x0:x1]
    scores = {}
    for c in range(1, 5):
        name = PHENOCYTE[c]
        mine = ours == names.index(name) if name in names else np.zeros_like(truth, bool)
        theirs = truth == c
        union = int((mine | theirs).sum())
        scores[name] = round(float((mine & theirs).sum() / union), 4) if union else None
    values = [v for v in scores.values() if v is not None]
    result = {"model": model_path, "iou": scores, "mean_foreground_iou": round(float(np.mean(values)), 4)}
    if figure:
        _figure(strip, truth, ours, names, Path(figure))
    return result


def _figure(strip: np.ndarray, truth: np.ndarray, ours: np.ndarray, names: list[str], path: Path) -> None:
    by_name = np.zeros((len(names), 3), np.uint8)
    for i, n in enumerate(names):
        by_name[i] = COLOURS[PHENOCYTE.index(n)] if n in PHENOCYTE else (128, 128, 128)
    panels = [strip, COLOURS[truth].astype(np.uint8), by_name[ours]]
    page = np.concatenate([np.pad(p, ((0, 0), (4, 4), (0, 0)), constant_values=255) for p in panels], axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(page, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_path", default=None)
    p.add_argument("--config", default="demo")
    p.add_argument("--figure", default=None, help="write photograph | pseudo ground truth | prediction here")
    p.add_argument("--stats", action="store_true", help="print the measured statistics of the real photograph")
    p.add_argument("--synthetic", default=None, help="a synthetic dataset: the same statistics over its test split")
    p.add_argument("--n", type=int, default=36, help="test images of --synthetic")
    args = p.parse_args()
    if args.synthetic:
        print(json.dumps(synthetic_statistics(Path(args.synthetic), args.n), indent=1))
    elif args.stats or not args.model_path:
        print(json.dumps(statistics(), indent=1))
    if args.model_path:
        print(json.dumps(iou(args.model_path, args.config, args.figure), indent=1))


if __name__ == "__main__":
    main()
