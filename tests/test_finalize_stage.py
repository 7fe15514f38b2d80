"""The finalize stage: rebuilt from samples/*.json alone, byte for byte, merging shards; columns follow rows."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import run_args
from xai.cli import main
from xai.errors import XAIError
from xai.pipeline import finalize
from xai.pipeline.finalize_stage import summary_fields

OUTPUTS = ("summary.csv", "summary.json", "manifest.json", "index.html", "gallery.html", "explorer/data.js")


def test_finalize_alone_rebuilds_the_same_files(tiny_run, tmp_path):
    _base, data, ckpt = tiny_run
    out = tmp_path / "run"
    assert main("scorecam", run_args(ckpt, data, out, "--compare")) == 0
    written = {name: (out / name).read_bytes() for name in OUTPUTS}
    moved = tmp_path / "elsewhere" / "copy"  # nothing but the folder: not the data, not the checkpoint
    shutil.copytree(out, moved)
    for name in OUTPUTS:
        (moved / name).unlink()
    assert main("gradcam", ["--finalize", str(moved)]) == 0
    assert {name: (moved / name).read_bytes() for name in OUTPUTS} == written


def test_finalize_merges_shards_written_separately(tiny_run, tmp_path):
    _base, data, ckpt = tiny_run
    whole, merged = tmp_path / "whole", tmp_path / "merged"
    assert main("gradcam", run_args(ckpt, data, whole, "--num_samples", "3", "--split", "train")) == 0
    first, second = tmp_path / "a", tmp_path / "b"
    assert main("gradcam", run_args(ckpt, data, first, "--num_samples", "1", "--split", "train")) == 0
    assert main("gradcam", run_args(ckpt, data, second, "--num_samples", "3", "--split", "train")) == 0
    shutil.copytree(second, merged)
    shutil.copytree(first, merged, dirs_exist_ok=True)  # sample0 from one run, sample1-2 from the other
    manifest = finalize(merged)
    assert manifest["samples"]["explained"] == 3 and not manifest["samples"]["runs_mixed"]
    rows = json.loads((merged / "summary.json").read_text())
    expected = json.loads((whole / "summary.json").read_text())
    drop = lambda r: {k: v for k, v in r.items() if not k.endswith("seconds")}  # noqa: E731
    assert [drop(r) for r in rows] == [drop(r) for r in expected]
    assert len(manifest["timing"]["workers"]) == 2  # two explain processes, each with its own timing


def test_summary_columns_follow_the_rows():
    rows = [{"sample": "s0", "class": "root", "iou": 0.5}, {"sample": "s1", "class": "root", "iou": 0.4, "new": 1}]
    assert summary_fields(rows) == ["sample", "class", "iou", "new"]


def test_nothing_to_finalize_is_one_line(tmp_path):
    with pytest.raises(XAIError, match="no sample records"):
        finalize(tmp_path)
    with pytest.raises(XAIError, match="output folder not found"):
        finalize(tmp_path / "missing")
