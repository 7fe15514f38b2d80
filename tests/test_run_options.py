"""The run declared once (xai.pipeline.options.RunOptions): a new field reaches its flag, its check, the
manifest and the resume key; what a run refuses before reading anything; what a failed run exits with; a
manifest that says what ran."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pytest

import xai.data
import xai.pipeline.options
from tests.helpers import run_args, tiny_fpn
from xai.checkpoint import save_checkpoint
from xai.cli import build_parser, main
from xai.config import DEFAULT_CLASSES
from xai.options import option
from xai.pipeline.options import RUN, RunOptions


@dataclass(frozen=True, kw_only=True)
class WithPatience(RunOptions):
    """RunOptions with one more setting, as a contributor would add it: one field."""

    patience: int = option(3, "samples to wait for before giving up", minimum=1, section=RUN)


def _help_entry(text: str, flag: str) -> str:
    start = text.index(f"  --{flag}")
    return " ".join(text[start:].split("\n  --", 1)[0].split())


def test_a_new_run_option_is_one_field_that_reaches_flag_check_manifest_and_resume_key(
    tiny_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(xai.pipeline.options, "RunOptions", WithPatience)
    entry = _help_entry(build_parser("gradcam").format_help(), "patience")
    assert entry == "--patience PATIENCE samples to wait for before giving up (default: 3)"  # its flag and help

    _base, data, ckpt = tiny_run
    out = tmp_path / "run"
    args = run_args(ckpt, data, out, "--num_samples", "1", "--workers", "0", "--classes", "root")
    assert main("gradcam", [*args, "--patience", "0"]) == 2  # its check, in the library's words, as a flag
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: --patience must be at least 1, got 0"
    assert not out.exists()  # refused before anything was written

    assert main("gradcam", [*args, "--patience", "5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["patience"] == 5  # the manifest
    record = json.loads((out / "samples" / "sample0.json").read_text(encoding="utf-8"))
    assert record["run_key"]["patience"] == 5  # the resume key (it changes results: result=True)

    assert main("gradcam", [*args, "--patience", "5", "--resume"]) == 0
    kept = json.loads((out / "samples" / "sample0.json").read_text(encoding="utf-8"))
    assert kept["finished"] == record["finished"]  # same key: kept
    assert main("gradcam", [*args, "--patience", "6", "--resume"]) == 0
    redone = json.loads((out / "samples" / "sample0.json").read_text(encoding="utf-8"))
    assert redone["finished"] > record["finished"] and redone["run_key"]["patience"] == 6  # another key: redone


def test_every_flag_of_the_run_comes_from_a_declared_field():
    parser = build_parser("scorecam")
    flags = {a.dest for a in parser._actions} - {"help"}
    declared = {s.name for s in RunOptions.specs() if s.cli}
    by_hand = {"finalize", "methods", "compare", "shard"}  # the command line's own: not settings of a run
    method_flags = set(parser.get_default("_method_options"))
    assert flags == declared | by_hand | method_flags
    assert not declared & method_flags
    for spec in RunOptions.specs():  # no argparse default repeats a declared one: unset flags are None
        if spec.cli:
            assert parser.get_default(spec.name) is None, spec.name


def _unreadable_masks(data, tmp_path, which: list[str]):
    """A copy of the tiny dataset whose test split's masks `which` (all: every one) are not images."""
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    split = [line.split(",") for line in (copy / "dataset_split.csv").read_text().splitlines()[1:]]
    test = [name for name, part in split if part.strip() == "test"]
    for name in test if which == ["all"] else which:
        (copy / "masks" / f"{name.rsplit('.', 1)[0]}_mask.png").write_bytes(b"not a png")
    return copy, test


def test_a_run_that_explains_none_of_its_samples_exits_1_and_one_with_some_exits_0(tiny_run, tmp_path, capsys):
    _base, data, ckpt = tiny_run
    broken, test = _unreadable_masks(data, tmp_path / "none", ["all"])
    out = tmp_path / "none" / "out"
    assert main("gradcam", run_args(ckpt, broken, out, "--workers", "0")) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: no sample explained: all 2 were skipped; the first, sample0 (")
    assert "mask" in last
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))  # the summaries still say why
    assert manifest["samples"]["explained"] == 0 and len(manifest["samples"]["skipped"]) == 2

    some, _ = _unreadable_masks(data, tmp_path / "some", [test[0]])
    out = tmp_path / "some" / "out"
    assert main("gradcam", run_args(ckpt, some, out, "--workers", "0")) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["samples"]["explained"] == 1 and len(manifest["samples"]["skipped"]) == 1

    # a shard whose share is empty explains nothing and is no failure
    assert main("gradcam", run_args(ckpt, data, tmp_path / "shard", "--shard", "5/7", "--workers", "0")) == 0


@pytest.fixture
def no_photograph_read(monkeypatch):
    """Fails the test if any photograph is read."""

    def refuse(*args, **kwargs):
        raise AssertionError("a photograph was read")

    monkeypatch.setattr(xai.data, "read_image", refuse)


@pytest.mark.parametrize("source", ["checkpoint", "flag"])
def test_an_input_size_beyond_the_bound_is_refused_before_any_photograph_is_read(
    tiny_run, tmp_path, capsys, no_photograph_read, source
):
    _base, data, ckpt = tiny_run
    if source == "checkpoint":  # a safetensors header is text anyone can edit
        ckpt = tmp_path / "huge.safetensors"
        classes = list(DEFAULT_CLASSES)
        save_checkpoint(ckpt, tiny_fpn(seed=0), arch="FPN", encoder="resnet18", classes=classes, img_size=(100_000, 64))
        extra: tuple[str, ...] = ()
    else:
        extra = ("--img_size", "64", "16385")
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, data, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    if source == "checkpoint":
        assert err[0] == (
            f"error: the checkpoint {ckpt}: the input size 100000x64 is outside 1..16384 px a side "
            "(give a smaller --img_size)"
        )
    else:
        assert err[0] == "error: --img_size must be at most 16384, got 16385"
    assert not out.exists()


def test_the_manifest_says_what_ran_the_checkpoints_preprocessing_and_numerics_after_finalize_too(tiny_run, tmp_path):
    _base, data, _ckpt = tiny_run
    ckpt = tmp_path / "area_top_left.safetensors"
    preprocessing = {"interpolation": "area", "pad_position": "top_left", "pad_value": 0, "multiple": 32}
    save_checkpoint(
        ckpt,
        tiny_fpn(seed=0),
        arch="FPN",
        encoder="resnet18",
        classes=list(DEFAULT_CLASSES),
        img_size=(64, 64),
        extra={"preprocessing": preprocessing},
    )
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, data, out, "--num_samples", "1", "--workers", "0", "--classes", "seed")) == 0
    for _ in ("run", "finalize"):
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["config"]["preprocessing"] != preprocessing  # the config asked for another
        assert manifest["preprocessing"] == preprocessing  # the checkpoint's, which ran; not the config's
        assert manifest["input"]["preprocessing"] == preprocessing
        assert manifest["input"]["img_size"] == [64, 64]
        assert manifest["input"]["img_size_from"] == f"the checkpoint {ckpt}"
        assert manifest["device"] == "cpu" and manifest["numerics"]["everything_else"] == "fp32"
        assert manifest["options"]["classes"] == ["seed"] and manifest["options"]["model_path"] == str(ckpt)
        sample = json.loads((out / "samples" / "sample0.json").read_text(encoding="utf-8"))
        assert sample["run"]["preprocessing"] == preprocessing
        assert main("gradcam", ["--finalize", str(out)]) == 0
