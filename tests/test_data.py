"""The users' data layout, palette masks, preprocessing and its round trip, configs, safe errors."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from xai.config import load_config
from xai.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Letterbox,
    Preprocessing,
    SegmentationDataset,
    decode_mask,
    denormalize,
    read_split,
)
from xai.errors import SampleError, XAIError

PALETTE = [(0, 0, 0), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255)]


def _write_dataset(root, items, rgb_masks=False):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for name, split, img, ids in items:
        cv2.imwrite(str(root / "images" / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        mask = np.array(PALETTE, np.uint8)[ids] if rgb_masks else ids
        if rgb_masks:
            mask = cv2.cvtColor(mask, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / "masks" / f"{name.rsplit('.', 1)[0]}_mask.png"), mask)
        rows.append({"img_name": name, "set": split})
    with open(root / "dataset_split.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["img_name", "set"])
        w.writeheader()
        w.writerows(rows)


def _sample(h=60, w=30, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    ids = np.zeros((h, w), np.uint8)
    ids[10:50, 12:15] = 1
    ids[5:10, 10:20] = 3
    ids[8:11, 13:16] = 4
    return img, ids


def test_letterbox_geometry_matches_training_preprocessing():
    box = Letterbox.fit((600, 300), (512, 256))  # portrait photo, img_size (width, height)
    assert box.resized_hw == (512, 256) and box.padded_hw == (512, 512)
    wide = Letterbox.fit((300, 700), (512, 256))
    assert wide.resized_hw == (219, 512) and wide.padded_hw == (256, 512)  # at least img_size
    odd = Letterbox.fit((300, 700), (500, 100))
    assert odd.resized_hw == (214, 500) and odd.padded_hw == (224, 512)  # then a multiple of 32
    small = Letterbox.fit((100, 50), (128, 256))
    assert small.resized_hw == (256, 128) and small.padded_hw == (256, 128)


def test_preprocessing_round_trip_onto_the_photograph():
    img, ids = _sample(61, 29)
    box = Letterbox.fit(img.shape[:2], (64, 32), Preprocessing(pad_position="top_left"))
    padded = box.apply_image(img)
    assert padded.shape[:2] == box.padded_hw
    rh, rw = box.resized_hw
    assert padded[rh:].max(initial=0) == 0 and padded[:, rw:].max(initial=0) == 0  # zero padding bottom/right
    mask = box.apply_mask(ids)
    back = box.to_original(mask, nearest=True)
    assert back.shape == ids.shape and (back == ids).mean() > 0.9
    x = torch.from_numpy(padded)  # normalise / denormalise is exact up to rounding
    from xai.data import normalize

    t = normalize(padded, IMAGENET_MEAN, IMAGENET_STD)
    assert t.shape == (3, *box.padded_hw) and abs(float(t.mean())) < 3
    assert np.abs(denormalize(t, IMAGENET_MEAN, IMAGENET_STD).astype(int) - x.numpy()).max() <= 1
    cam = np.zeros(box.padded_hw, np.float32)
    cam[:rh, :rw] = 1.0
    assert box.to_original(cam).shape == ids.shape and box.to_original(cam).min() == 1.0  # padding cropped


ALBUMENTATIONS_CASES = [  # photograph (h, w), the pipeline's max_size, min_height, min_width
    ((600, 300), 512, 256, 512),  # the researchers' size: a portrait photograph becomes 512×512, centred
    ((300, 700), 512, 256, 512),  # landscape: padded above and below
    ((90, 41), 64, 32, 64),
    ((33, 100), 64, 32, 64),
    ((20, 12), 64, 32, 64),  # smaller than the input: enlarged
    ((100, 400), 64, 32, 64),
    ((71, 69), 64, 32, 64),
]


@pytest.mark.parametrize("hw,size,min_h,min_w", ALBUMENTATIONS_CASES)
def test_the_phenocyte_preprocessing_is_the_researchers_albumentations_pipeline(hw, size, min_h, min_w):
    """LongestMaxSize(max_size, interpolation=1) then PadIfNeeded(min_height, min_width, border_mode=0)."""
    import albumentations as A

    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    img = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    ids = rng.integers(0, 5, hw, dtype=np.uint8)
    pipeline = A.Compose(
        [
            A.LongestMaxSize(max_size=size, interpolation=1),
            A.PadIfNeeded(min_height=min_h, min_width=min_w, border_mode=0),
        ]
    )
    theirs = pipeline(image=img, mask=ids)
    box = Letterbox.fit(hw, (min_w, min_h), load_config().preprocess())  # img_size is (width, height)
    assert np.array_equal(box.apply_image(img), theirs["image"]), (hw, box)
    assert np.array_equal(box.apply_mask(ids), theirs["mask"])


def test_maps_masks_and_figures_map_back_through_centred_padding():
    box = Letterbox.fit((64, 30), (64, 64), Preprocessing())  # no resize; 17 columns of padding on the left
    assert box.offset == (0, 17) and box.box == (0, 64, 17, 47)
    cam = np.zeros(box.padded_hw, np.float32)
    cam[5, 17 + 7] = 1.0  # one photograph pixel
    back = box.to_original(cam)
    assert back.shape == (64, 30) and back[5, 7] == 1.0 and back.sum() == 1.0
    ids = np.random.default_rng(0).integers(0, 5, (64, 30), dtype=np.uint8)
    assert np.array_equal(box.to_original(box.apply_mask(ids), nearest=True), ids)
    assert box.valid().sum() == 64 * 30 and not box.valid()[:, :17].any()
    half = Letterbox.fit((128, 60), (64, 64), Preprocessing())  # shrunk by 2, then centred
    cam = np.zeros(half.padded_hw, np.float32)
    top, _, left, _ = half.box
    cam[top + 10, left + 6] = 1.0
    peak = np.unravel_index(np.argmax(half.to_original(cam)), (128, 60))
    assert abs(peak[0] - 20.5) <= 1 and abs(peak[1] - 12.5) <= 1  # the input pixel covers photograph rows 20-21
    assert Letterbox.from_array(half.as_array()) == Letterbox(
        half.orig_hw, half.resized_hw, half.padded_hw, half.offset
    )


def test_palette_masks_decode_by_palette_not_by_colours_present():
    ids = np.array([[0, 3], [3, 0]], np.uint8)  # root, hypocotyl and seed absent
    rgb = np.array(PALETTE, np.uint8)[ids]
    assert (decode_mask(rgb, PALETTE) == ids).all()
    assert (decode_mask(ids, PALETTE) == ids).all()
    grey_ids = np.stack([ids] * 3, -1)  # class ids saved as a 3-channel grey PNG
    assert (decode_mask(grey_ids, PALETTE) == ids).all()
    bad = rgb.copy()
    bad[0, 0] = (10, 20, 30)
    with pytest.raises(SampleError, match=r"RGB\(10, 20, 30\)"):
        decode_mask(bad, PALETTE, source="m.png")
    with pytest.raises(SampleError, match="class id 7"):
        decode_mask(np.full((2, 2), 7, np.uint8), PALETTE)


@pytest.mark.parametrize("rgb_masks", [False, True])
def test_dataset_reads_the_users_layout(tmp_path, rgb_masks):
    a, b = _sample(seed=1), _sample(seed=2)
    _write_dataset(tmp_path, [("p1.png", "test", *a), ("p2.jpg", "train", *b)], rgb_masks=rgb_masks)
    ds = SegmentationDataset(tmp_path, "test", palette=PALETTE, img_size=(32, 64))
    assert len(ds) == 1 and ds.names == ["p1.png"]
    item = ds[0]
    assert item["image"].shape == (3, 64, 32) and item["mask"].dtype == torch.int64
    assert (item["gt"] == a[1]).all() and item["rgb"].shape == (60, 30, 3)
    assert set(item["mask"].unique().tolist()) == {0, 1, 3, 4}


def test_bad_samples_are_named_and_skippable(tmp_path):
    a = _sample()
    _write_dataset(tmp_path, [("ok.png", "val", *a), ("nomask.png", "val", *a), ("broken.png", "val", *a)])
    (tmp_path / "masks" / "nomask_mask.png").unlink()
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    with open(tmp_path / "dataset_split.csv", "a") as fh:
        fh.write("ghost.png,val\n")
    strict = SegmentationDataset(tmp_path, "val", palette=PALETTE, img_size=(64, 32))
    with pytest.raises(SampleError, match=r"mask not found: .*nomask_mask\.png"):
        strict[1]
    lenient = SegmentationDataset(tmp_path, "val", palette=PALETTE, img_size=(64, 32), skip_errors=True)
    errors = [lenient[i].get("error") for i in range(len(lenient))]
    assert errors[0] is None
    missing, unreadable, absent = errors[1:4]
    assert isinstance(missing, str) and isinstance(unreadable, str) and isinstance(absent, str)
    assert "mask not found" in missing and "unreadable image" in unreadable and "image not found" in absent


def test_split_file_errors(tmp_path):
    with pytest.raises(XAIError, match="data root not found"):
        read_split(tmp_path / "none", "test")
    tmp_path.joinpath("dataset_split.csv").write_text("name,split\na.png,test\n")
    with pytest.raises(XAIError, match="img_name,set"):
        read_split(tmp_path, "test")
    with pytest.raises(XAIError, match="unknown split 'dev'"):
        read_split(tmp_path, "dev")


def test_a_16000_pixel_photograph_runs_in_bounded_memory_and_a_larger_one_is_skipped(tiny_run, tmp_path):
    """16000×16000 (256 MP): explained, figures from a 4096-pixel display copy, summaries on the
    photograph, peak RSS under 4 GB; with --max_pixels below its size: skipped with one line, exit 0."""
    import subprocess
    import sys
    from pathlib import Path

    _base, _data, ckpt = tiny_run
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "tests.big_photo", str(tmp_path / "a"), "16000", "16000", str(ckpt)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines[-2] == "0", done.stderr[-2000:]
    peak_mb = int(lines[-1])
    assert peak_mb < 4096, f"peak RSS {peak_mb} MB"
    run = tmp_path / "a" / "run"
    figure = cv2.imread(str(run / "tpfpfn_maps" / "sample0_tpfpfn_root.png"))
    assert figure is not None and max(figure.shape[:2]) < 4096  # drawn from the display copy
    summary = (run / "summary.csv").read_text()
    assert "root" in summary
    skipped = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.big_photo",
            str(tmp_path / "b"),
            "3000",
            "2000",
            str(ckpt),
            "--max_pixels",
            "5000000",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert "over the limit of 5 MP (--max_pixels)" in skipped.stderr and "Traceback" not in skipped.stderr


def test_a_split_file_with_every_kind_of_odd_row(tmp_path, caplog):
    """Names in file order; rows without a name, of unknown sets and repeated are left out, each kind said
    once (word for word); a byte-order mark, spaces, extra columns and blank lines are fine."""
    unnamed = "".join(f",x{i}\n" for i in range(7))
    tmp_path.joinpath("dataset_split.csv").write_text(
        "\ufeffimg_name , set ,extra\n a.png , test ,1\n,test,2\nb.png,dev,3\nc.png,,4\na.png,test,5\n"
        f"d.png,train\n\n{unnamed}e.png,test\ne.png,test\n",
        encoding="utf-8",
    )
    csv_path = tmp_path / "dataset_split.csv"
    with caplog.at_level("WARNING", logger="xai.data"):
        assert read_split(tmp_path, "test") == ["a.png", "e.png"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{csv_path}: 8 row(s) without an image name ignored (line 3, 9, 10, 11, 12)",
        f"{csv_path}: rows of set(s) (empty), dev ignored (sets are train, val, test)",
        f"{csv_path}: 2 repeated row(s) of split 'test' explained once: a.png, e.png",
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="xai.data"):
        assert read_split(tmp_path, "train") == ["d.png"]
    assert len(caplog.records) == 2  # nothing repeated in train
    with pytest.raises(XAIError) as err:
        read_split(tmp_path, "val")
    assert str(err.value) == f"split 'val' of {csv_path} has no images"
    refusals = {
        "name,split\na,test\n": "has no column img_name or set (it needs img_name,set; found name,split)",
        "": "has no column img_name or set (it needs img_name,set; found nothing)",
        "img_name\na,test\n": "has no column set (it needs img_name,set; found img_name)",
    }
    for text, message in refusals.items():
        tmp_path.joinpath("s.csv").write_text(text)
        with pytest.raises(XAIError) as err:
            read_split(tmp_path, "test", "s.csv")
        assert str(err.value) == f"{tmp_path / 's.csv'} {message}"
    tmp_path.joinpath("s.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(XAIError) as err:
        read_split(tmp_path, "test", "s.csv")
    assert str(err.value) == (
        f"{tmp_path / 's.csv'} is not a readable UTF-8 CSV file: "
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
    )
    with pytest.raises(XAIError) as err:
        read_split(tmp_path, "test", "missing.csv")
    assert str(err.value) == f"split file not found: {tmp_path / 'missing.csv'}"
