"""The explain stage: records written last, resume after an interruption, skipped samples, figure failures."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import xai.pipeline.explain_stage as stage
from tests.helpers import run_args
from xai.cli import main
from xai.mapfile import load_maps

EXPLAIN_SAMPLES = stage.explain_samples


def _explained_calls(monkeypatch, fail_on=None):
    """Count the samples explained; raise KeyboardInterrupt on sample `fail_on` (Ctrl-C mid-run)."""
    calls: list[int] = []
    real = EXPLAIN_SAMPLES

    def counting(items, execution):
        calls.extend(item.index for item in items)
        if any(item.index == fail_on for item in items):
            raise KeyboardInterrupt
        return real(items, execution)

    monkeypatch.setattr(stage, "explain_samples", counting)
    return calls


def test_resume_after_an_interrupted_run(tiny_run, tmp_path, monkeypatch):
    _base, data, ckpt = tiny_run
    out = tmp_path / "resume"
    _explained_calls(monkeypatch, fail_on=1)
    assert main("scorecam", run_args(ckpt, data, out)) == 130
    assert (out / "samples" / "sample0.json").is_file() and not (out / "samples" / "sample1.json").exists()
    assert not list(out.rglob("*.part*"))
    kept = {p: p.stat().st_mtime_ns for p in (out / "scorecam_maps").glob("sample0_*.png")}
    assert len(kept) == 5

    calls = _explained_calls(monkeypatch)
    assert main("scorecam", run_args(ckpt, data, out, "--resume")) == 0
    assert calls == [1], "only the unfinished sample is explained again"
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert len(list((out / "scorecam_maps").glob("sample1_*.png"))) == 5
    assert len(json.loads((out / "summary.json").read_text())) == 10

    calls.clear()  # other options: nothing written under them is reused
    assert main("scorecam", run_args(ckpt, data, out, "--resume", "--region", "all")) == 0
    assert calls == [0, 1]
    calls.clear()  # the batch size does not change the maps: everything is kept
    assert main("scorecam", run_args(ckpt, data, out, "--resume", "--region", "all", "--batch_size", "3")) == 0
    assert calls == []
    # npz files written without --save_raw lack the raw maps: --save_raw redoes them
    assert main("scorecam", run_args(ckpt, data, out, "--resume", "--region", "all", "--save_raw")) == 0
    assert calls == [0, 1]


def test_resume_redoes_samples_of_another_split(tiny_run, tmp_path, monkeypatch):
    """Sample i of the test split is not sample i of the train split: --resume keeps nothing across splits."""
    _base, data, ckpt = tiny_run
    out = tmp_path / "splits"
    assert main("gradcam", run_args(ckpt, data, out)) == 0
    calls = _explained_calls(monkeypatch)
    assert main("gradcam", run_args(ckpt, data, out, "--split", "train", "--resume")) == 0
    assert calls == [0, 1]
    rows = json.loads((out / "summary.json").read_text())
    train = json.loads((out / "manifest.json").read_text())["split"]
    assert train == "train" and len({r["image"] for r in rows}) == 2


def test_resume_redoes_samples_written_with_another_map_dtype(tiny_run, tmp_path, monkeypatch):
    """--map_dtype rounds the maps every output is computed from: a sample of another map_dtype is redone."""
    _base, data, ckpt = tiny_run
    out = tmp_path / "dtypes"
    one = ("--num_samples", "1", "--classes", "root")
    assert main("gradcam", run_args(ckpt, data, out, *one)) == 0  # the default, float16
    assert load_maps(out / "raw_maps" / "sample0.npz").map_dtype == "float16"
    calls = _explained_calls(monkeypatch)
    assert main("gradcam", run_args(ckpt, data, out, *one, "--map_dtype", "uint8", "--resume")) == 0
    assert calls == [0]
    with np.load(out / "raw_maps" / "sample0.npz") as raw:
        assert raw["gradcam"].dtype == np.uint8
    assert json.loads((out / "manifest.json").read_text())["map_dtype"] == "uint8"
    calls.clear()
    assert main("gradcam", run_args(ckpt, data, out, *one, "--map_dtype", "uint8", "--resume")) == 0
    assert calls == []


def test_a_shorter_fresh_run_owns_the_summaries(tiny_run, tmp_path):
    """Rerunning with fewer samples (no --resume) leaves no record of the longer run in summary or gallery."""
    _base, data, ckpt = tiny_run
    out = tmp_path / "shorter"
    assert main("gradcam", run_args(ckpt, data, out, "--split", "train", "--num_samples", "3")) == 0
    assert len(json.loads((out / "summary.json").read_text())) == 15
    assert main("gradcam", run_args(ckpt, data, out, "--split", "train", "--num_samples", "1")) == 0
    assert [p.name for p in (out / "samples").iterdir()] == ["sample0.json"]
    assert {r["sample"] for r in json.loads((out / "summary.json").read_text())} == {"sample0"}
    assert "sample2_" not in (out / "gallery.html").read_text()


def test_unreadable_sample_is_skipped_listed_and_retried(tiny_run, tmp_path, monkeypatch, capsys):
    _base, data, ckpt = tiny_run
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    names = [
        line.split(",")[0]
        for line in (broken / "dataset_split.csv").read_text().splitlines()[1:]
        if line.endswith(",test")
    ]
    (broken / "images" / names[1]).write_bytes(b"not an image")
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, broken, out)) == 0
    err = capsys.readouterr().err
    assert "skipped 1 sample(s):" in err and names[1] in err and "unreadable image" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"]["explained"] == 1
    assert [s["sample"] for s in manifest["samples"]["skipped"]] == ["sample1"]
    record = json.loads((out / "samples" / "sample1.json").read_text())
    assert record["status"] == "skipped" and "unreadable image" in record["error"]
    calls = _explained_calls(monkeypatch)
    assert main("gradcam", run_args(ckpt, broken, out, "--resume")) == 0
    assert calls == []  # retried, and the image is still unreadable: skipped again before the model
    assert json.loads((out / "manifest.json").read_text())["samples"]["skipped"][0]["sample"] == "sample1"


def test_a_figure_that_cannot_be_drawn_skips_its_sample(tiny_run, tmp_path, monkeypatch, capsys):
    _base, data, ckpt = tiny_run
    import dataclasses

    import xai.pipeline.outputs as outputs

    real = outputs.ERROR_OUTPUT.draw

    def fails_for_sample1(path, *a, **k):
        if "sample1_" in str(path):
            raise ValueError("injected")
        return real(path, *a, **k)

    monkeypatch.setattr(outputs, "ERROR_OUTPUT", dataclasses.replace(outputs.ERROR_OUTPUT, draw=fails_for_sample1))
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, data, out, "--workers", "0")) == 0
    assert "a figure could not be drawn: ValueError: injected" in capsys.readouterr().err
    assert json.loads((out / "samples" / "sample1.json").read_text())["status"] == "skipped"
    assert json.loads((out / "samples" / "sample0.json").read_text())["status"] == "done"


@pytest.mark.parametrize("workers", ["0", "2"])
def test_same_files_with_and_without_figure_processes(tiny_run, tmp_path, workers):
    _base, data, ckpt = tiny_run
    out = tmp_path / f"w{workers}"
    assert main("gradcam", run_args(ckpt, data, out, "--workers", workers, "--num_samples", "1")) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        ["index.html", "gallery.html", "manifest.json", "summary.csv", "summary.json"]
        + ["raw_maps/sample0.npz", "samples/sample0.json", "explorer/sample0.js"]
        + [f"explorer/{f}" for f in ("data.js", "explorer.js", "explorer.css")]
        + [
            f"{d}/sample0_{k}_{c}.png"
            for d, k in (("tpfpfn_maps", "tpfpfn"), ("gradcam_maps", "gradcam"))
            for c in ("background", "root", "hypocotyl", "cotyledon", "seed")
        ]
    )


def test_sigterm_finishes_what_is_explained_and_writes_the_summaries(tiny_run, tmp_path, monkeypatch, capsys):
    import os
    import signal

    _base, data, ckpt = tiny_run

    def preempted(items, execution):  # the cluster's SIGTERM arrives while sample1 is being explained
        if any(item.index == 1 for item in items):
            os.kill(os.getpid(), signal.SIGTERM)
        return EXPLAIN_SAMPLES(items, execution)

    monkeypatch.setattr(stage, "explain_samples", preempted)
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, data, out, "--split", "train", "--num_samples", "4")) == 143
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "terminated (SIGTERM): completed samples are kept; rerun with --resume to continue"
    assert [p.name for p in sorted((out / "samples").iterdir())] == ["sample0.json"]
    assert len(json.loads((out / "summary.json").read_text())) == 5  # the summaries of what is complete
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the CLI's handler is gone afterwards
    calls = _explained_calls(monkeypatch)
    assert main("gradcam", run_args(ckpt, data, out, "--split", "train", "--num_samples", "4", "--resume")) == 0
    assert calls == [1, 2, 3]


def test_sigterm_to_the_whole_process_group_keeps_the_finished_sample(tiny_run, tmp_path):
    """A scheduler's SIGTERM reaches the loader and figure workers too: they leave it to the main process, so
    the sample whose figures are being drawn still gets its record, and nothing hangs or is half written."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    _base, data, ckpt = tiny_run
    out = tmp_path / "group"
    args = run_args(ckpt, data, out, "--split", "train", "--num_samples", "4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.group_terminator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,  # its own process group, as a batch job has
    )
    try:
        _, stderr = proc.communicate(timeout=240)  # a hang fails here
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith("terminated (SIGTERM)")
    assert "Traceback" not in stderr
    assert [p.name for p in sorted((out / "samples").iterdir())] == ["sample0.json"]
    assert json.loads((out / "samples" / "sample0.json").read_text())["status"] == "done"
    assert len(list((out / "gradcam_maps").glob("sample0_*.png"))) == 5
    assert not list(out.rglob("*.part*"))
    assert main("gradcam", run_args(ckpt, data, out, "--split", "train", "--num_samples", "4", "--resume")) == 0
    statuses = [json.loads(p.read_text())["status"] for p in sorted((out / "samples").iterdir())]
    assert statuses == ["done"] * 4


def test_a_sample_the_model_cannot_take_is_skipped(tiny_run, tmp_path, monkeypatch, capsys):
    _base, data, ckpt = tiny_run
    from xai.methods.gradcam import GradCAM

    real = GradCAM.explain

    def fails_on_wide_inputs(self, x, **kw):
        if stage_index[0] == 1:
            raise RuntimeError("Sizes of tensors must match except in dimension 1\nmore detail")
        return real(self, x, **kw)

    stage_index = [0]

    def tracking(items, execution):
        stage_index[0] = items[0].index
        return EXPLAIN_SAMPLES(items, execution)

    monkeypatch.setattr(GradCAM, "explain", fails_on_wide_inputs)
    monkeypatch.setattr(stage, "explain_samples", tracking)
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, data, out)) == 0
    err = capsys.readouterr().err
    assert (
        "sample1 (" in err
        and "the model failed on this sample: RuntimeError: Sizes of tensors must match except in dimension 1" in err
        and "more detail" not in err
    )
    assert json.loads((out / "manifest.json").read_text())["samples"]["explained"] == 1


def test_a_full_disk_stops_the_run_with_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    import errno
    import os

    import xai.io as xio

    _base, data, ckpt = tiny_run
    real = xio._fsync

    def full_at_sample1(path):
        if "sample1" in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path)

    monkeypatch.setattr(xio, "_fsync", full_at_sample1)
    out = tmp_path / "out"
    assert main("gradcam", run_args(ckpt, data, out, "--workers", "0")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: disk full while writing ") and "sample1" in err[-1]
    assert (out / "samples" / "sample0.json").is_file() and not (out / "samples" / "sample1.json").exists()
    assert not list(out.rglob("*.part*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_worker_outlives_a_kill_9_of_the_main_process(tiny_run, tmp_path):
    """kill -9 of the main process (the OOM killer, a scheduler) as sample 3 starts: its image loader and
    figure workers are gone within a few seconds, none left as an orphan."""
    _base, data, ckpt = tiny_run
    pids_file = tmp_path / "pids.json"
    args = run_args(ckpt, data, tmp_path / "killed", "--split", "train", "--num_samples", "5", "--workers", "2")
    log = tmp_path / "stderr.txt"
    proc = subprocess.run(  # output to a file: a pipe would wait for every process that holds it
        [sys.executable, "-m", "tests.main_killer", *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "XAI_TEST_PIDS": str(pids_file)},
        timeout=240,
    )
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    pids = json.loads(pids_file.read_text())
    assert len(pids) >= 2, pids  # at least the loader and a figure worker existed

    def alive() -> list[int]:
        out = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":  # a zombie has ended (it waits for its parent to read its status)
                out.append(pid)
        return out

    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"orphans left after the main process was killed: {left}"
