"""seedling-xai inspect: the statistics of each class id, and warnings where they contradict the names."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from xai.cli import console_main
from xai.config import load_config
from xai.errors import XAIError
from xai.inspection import inspect_dataset

CORRECT = ["background", "hypocotyl", "cotyledon", "root", "seed"]  # the phenocyte ids
SCRIPTS = ["background", "root", "hypocotyl", "cotyledon", "seed"]  # the researchers' scripts' list


def _seedling(rng: np.random.Generator) -> np.ndarray:
    """A 200×80 mask in the phenocyte ids: a short stem (1), two leaves (2), a long thin root (3), a seed (4)."""
    m = np.zeros((200, 80), np.uint8)
    x = int(rng.integers(30, 50))
    cv2.line(m, (x, 40), (x + int(rng.integers(-8, 8)), 185), 3, 3)  # root: long and thin
    cv2.line(m, (x, 40), (x, 24), 1, 6)  # hypocotyl: short stem
    cv2.ellipse(m, (x - 12, 18), (9, 5), 20, 0, 360, 2, -1)  # two leaves, apart
    cv2.ellipse(m, (x + 12, 18), (9, 5), -20, 0, 360, 2, -1)
    cv2.circle(m, (x + 3, 42), 5, 4, -1)  # seed: small and round
    return m


def _dataset(root: Path, n: int = 6, bad_id: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    with open(root / "dataset_split.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["img_name", "set"])
        for i in range(n):
            mask = _seedling(rng)
            if bad_id and i == 0:
                mask[0, 0] = 9
            cv2.imwrite(str(root / "images" / f"s{i}.png"), np.full((200, 80, 3), 180, np.uint8))
            cv2.imwrite(str(root / "masks" / f"s{i}_mask.png"), mask)
            w.writerow([f"s{i}.png", "test" if i < 2 else "train"])
    return root


def _config(tmp_path: Path, classes: list[str]) -> str:
    path = tmp_path / f"{'_'.join(classes)}.yaml"
    palette = load_config().palette
    lines = [f"classes: [{', '.join(classes)}]", "palette:"] + [f"  {c}: {list(palette[c])}" for c in classes]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_phenocyte_ids_and_names():
    assert load_config().classes == tuple(CORRECT) and load_config("demo").classes == tuple(CORRECT)
    assert load_config("phenocyte_scripts").classes == tuple(SCRIPTS)
    colours = load_config().class_colors()  # the researchers' figure: 1 green, 2 yellow, 3 cyan, 4 magenta
    assert colours == [(0, 0, 0), (0, 255, 0), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def test_correct_names_give_the_statistics_and_no_warning(tmp_path):
    root = _dataset(tmp_path / "data")
    result = inspect_dataset(root, _config(tmp_path, CORRECT), tmp_path / "out")
    by = {c["name"]: c for c in result["classes"]}
    assert result["images"] == 6 and result["warnings"] == []
    assert by["root"]["skeleton_length"] > 5 * by["hypocotyl"]["skeleton_length"] and by["root"]["elongation"] > 20
    assert by["cotyledon"]["components_per_image"] == 2 and by["seed"]["elongation"] < 2
    assert by["root"]["images"] == 6 and 0 < by["seed"]["pixel_share"] < by["root"]["pixel_share"]
    assert (tmp_path / "out" / "inspect.json").is_file()
    assert (tmp_path / "out" / "inspect_samples.png").read_bytes()[:4] == b"\x89PNG"


def test_the_scripts_names_on_phenocyte_masks_warn(tmp_path, capsys):
    root = _dataset(tmp_path / "data")
    config = _config(tmp_path, SCRIPTS)
    assert (
        console_main(["inspect", "--data_root", str(root), "--config", config, "--output_dir", str(tmp_path / "o")])
        == 0
    )
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert any("'root' (id 1) is not the longest, thinnest structure: id 3 ('cotyledon')" in w for w in warnings)
    assert any("'cotyledon' (id 3) has 1 component(s)" in w for w in warnings)
    assert " 3  cotyledon" in out  # the table names each id by the config


def test_bad_data_is_one_line(tmp_path, capsys):
    with pytest.raises(XAIError, match="data root not found"):
        inspect_dataset(tmp_path / "nowhere")
    root = _dataset(tmp_path / "data", bad_id=True)
    result = inspect_dataset(root, _config(tmp_path, CORRECT))
    assert result["images"] == 5 and len(result["unreadable"]) == 1 and "class id 9" in result["unreadable"][0]
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "dataset_split.csv").write_text("img_name,set\na.png,test\n")
    assert console_main(["inspect", "--data_root", str(empty)]) == 2
    assert capsys.readouterr().err.startswith("error: no readable mask in ")
