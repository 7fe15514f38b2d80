"""Bad and odd inputs through both CLIs with --all: each sample is explained or skipped with one line naming
the file and why; exit 0 with the list; no traceback, no NaN or infinite value, no half-written file."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from tests.fuzz_data import make_fuzz_dataset, write_split_without_set_column
from xai.cli import main


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return root, make_fuzz_dataset(root)


def _finite(value):
    return not isinstance(value, float) or math.isfinite(value)


@pytest.mark.parametrize("method", ["gradcam", "scorecam"])
def test_every_sample_is_explained_or_skipped_with_a_reason(tiny_run, fuzz, tmp_path, capsys, method):
    _base, _, ckpt = tiny_run
    root, expected = fuzz
    out = tmp_path / method
    args = [
        "--model_path",
        str(ckpt),
        "--data_root",
        str(root),
        "--output_dir",
        str(out),
        "--all",
        "--max_activation_maps",
        "4",
        "--batch_size",
        "8",
        "--no_progress",
        "--workers",
        "2",
    ]
    assert main(method, args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    records = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in (out / "samples").glob("*.json")}
    assert set(records) == set(expected), "every row of the split is a sample, the repeated one once"
    skipped_lines = [line for line in err.splitlines() if line.startswith("  sample")]
    for name, why in expected.items():
        rec = records[name]
        if why is None:
            assert rec["status"] == "done", (name, rec.get("error"))
        else:
            assert rec["status"] == "skipped" and why in rec["error"], (name, rec.get("error"))
            assert sum(name in line and why in line for line in skipped_lines) == 1, (name, skipped_lines)
    assert "repeated row(s)" in err and "plain.png" in err and "holdout" in err and "without an image name" in err
    for row in json.loads((out / "summary.json").read_text()):
        assert all(_finite(v) for v in row.values()), row
    with open(out / "summary.csv") as fh:
        for row in csv.DictReader(fh):
            assert all(v.lower() not in ("nan", "inf", "-inf") for v in row.values()), row
    for npz in (out / "raw_maps").glob("*.npz"):
        maps = np.load(npz)[method]
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1, npz
    assert not list(out.rglob("*.part*"))


def test_a_split_file_without_its_set_column_is_one_line(tiny_run, tmp_path, capsys):
    _base, _, ckpt = tiny_run
    root = tmp_path / "data"
    make_fuzz_dataset(root)
    write_split_without_set_column(root)
    code = main(
        "gradcam",
        ["--model_path", str(ckpt), "--data_root", str(root), "--output_dir", str(tmp_path / "o"), "--no_progress"],
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "has no column set" in err[0], err
