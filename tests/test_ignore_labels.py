"""Ignore labels (config ignore_index, default 255): read, kept out of regions, errors, IoU and metrics
like padding, grey in figures, ignored by the training losses."""

from __future__ import annotations

import csv
import json
import shutil

import cv2
import numpy as np
import pytest

from tests.helpers import run_args
from xai.cli import main
from xai.config import DEFAULT_PALETTE, load_config
from xai.data import IGNORE, decode_mask
from xai.errors import SampleError, XAIError
from xai.figures.overlays import UNKNOWN_CLASS_COLOR, error_layers
from xai.metrics import error_counts, iou_dice

PALETTE = load_config().class_colors()  # in class order


def test_masks_keep_their_ignore_label_and_refuse_other_unknown_ids():
    ids = np.array([[0, 1, 255], [3, 255, 4]], np.uint8)
    assert decode_mask(ids, PALETTE, ignore_index=255).tolist() == ids.tolist()
    with pytest.raises(SampleError, match="class id 255, but the config has 5 classes"):
        decode_mask(ids, PALETTE)  # no ignore label declared
    seven = np.array([[0, 7], [2, 9]], np.uint8)
    with pytest.raises(SampleError, match=r"class id 9.*ignore_index is 7"):
        decode_mask(seven, PALETTE, ignore_index=7)
    assert decode_mask(seven[:1], PALETTE, ignore_index=7).tolist() == [[0, IGNORE]]  # 7 becomes IGNORE
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1] = (255, 255, 255)  # white: the ignore label of a colour mask
    rgb[0, 2] = DEFAULT_PALETTE["root"]
    assert decode_mask(rgb, PALETTE, ignore_index=255).tolist() == [[0, IGNORE, 3]]


def test_the_config_declares_it():
    assert load_config().ignore_index == 255 and load_config("demo").ignore_index == 255
    assert load_config(ignore_index=250).ignore_index == 250
    with pytest.raises(XAIError, match="ignore_index 3 is a class id"):
        load_config(ignore_index=3)


def test_an_ignored_pixel_is_no_error_and_is_drawn_grey():
    gt = np.array([[3, 3, 255, 0], [0, 255, 3, 0]])
    pred = np.array([[3, 0, 3, 3], [0, 3, 3, 0]])
    assert error_counts(gt, pred, 3) == {"tp": 2, "fp": 1, "fn": 1}  # the two root pixels on 255 are not FP
    assert iou_dice(error_counts(gt, pred, 3))[0] == pytest.approx(0.5)
    layers = error_layers(gt, pred, 3)
    assert layers[0][1] == UNKNOWN_CLASS_COLOR and layers[0][0].tolist() == (gt == 255).tolist()


def test_a_run_on_ignore_labelled_masks_explains_and_scores_the_labelled_pixels(tiny_run, tmp_path):
    """Half of each mask relabelled 255: no sample is skipped, IoU and TP/FP/FN leave those pixels out,
    and the evaluation runs."""
    _base, data, ckpt = tiny_run
    root = tmp_path / "data"
    shutil.copytree(data, root)
    for path in (root / "masks").iterdir():
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert mask is not None
        mask[: mask.shape[0] // 2] = 255
        cv2.imwrite(str(path), mask)
    out = tmp_path / "out"
    args = run_args(ckpt, root, out, "--split", "train", "--num_samples", "1", "--workers", "0")
    assert main("gradcam", [*args, "--evaluate", "--eval_steps", "4", "--no_road", "--sanity_samples", "0"]) == 0
    record = json.loads((out / "samples" / "sample0.json").read_text())
    assert record["status"] == "done"
    with (out / "summary.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["sample"] == "0"]
    name = record["name"]
    gt = np.asarray(cv2.imread(str(root / "masks" / f"{name.rsplit('.', 1)[0]}_mask.png"), cv2.IMREAD_UNCHANGED))
    assert bool(np.any(gt == 255))
    for row in rows:
        fp = int(row["fp"])
        assert fp >= 0 and int(row["tp"]) + int(row["fn"]) == int((gt == load_classes().index(row["class"])).sum())
    assert (out / "metrics.csv").is_file()


def load_classes() -> list[str]:
    return list(load_config().classes)
