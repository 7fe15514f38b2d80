"""A run on one huge photograph, for the bounded-memory test: writes a W×H seedling photograph and its
mask (a grey strip, a dark root and leaves), runs the Grad-CAM CLI on it in this process (--workers 0),
and prints this process's peak resident memory in MB as the last line. Test support only.

    python -m tests.big_photo OUT W H CHECKPOINT [CLI flags...]
"""

from __future__ import annotations

import csv
import resource
import sys
from pathlib import Path

import cv2
import numpy as np


def write_dataset(root: Path, w: int, h: int) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    img = np.full((h, w, 3), 170, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x = w // 2
    cv2.line(img, (x, h // 6), (x, h * 5 // 6), (120, 125, 128), max(3, w // 200))
    cv2.line(mask, (x, h // 6), (x, h * 5 // 6), 3, max(3, w // 200))
    cv2.ellipse(img, (x, h // 6), (w // 20, h // 60), 0, 0, 360, (60, 90, 40), -1)
    cv2.ellipse(mask, (x, h // 6), (w // 20, h // 60), 0, 0, 360, 2, -1)
    mask[: h // 20] = 255  # an ignore-labelled band
    cv2.imwrite(
        str(root / "images" / "big.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    del img
    cv2.imwrite(str(root / "masks" / "big_mask.png"), mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    with (root / "dataset_split.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["img_name", "set"], ["big.png", "test"]])


if __name__ == "__main__":
    out, w, h, ckpt, *flags = sys.argv[1:]
    root = Path(out) / "data"
    write_dataset(root, int(w), int(h))
    from xai.cli import main

    code = main(
        "gradcam",
        [
            "--model_path",
            ckpt,
            "--data_root",
            str(root),
            "--output_dir",
            str(Path(out) / "run"),
            "--workers",
            "0",
            "--no_progress",
            "--num_samples",
            "1",
            *flags,
        ],
    )
    print(code)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
