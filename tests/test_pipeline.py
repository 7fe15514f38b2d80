"""Both CLIs end to end on a tiny synthetic split: file names, summaries, gallery, resume, errors."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from xai.checkpoint import save_checkpoint
from xai.cli import main
from xai.config import DEFAULT_CLASSES
from xai.pipeline import class_metrics
from xai.synth import make_dataset

ROOT = Path(__file__).resolve().parent.parent
CLASSES = list(DEFAULT_CLASSES)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    data = base / "data"
    make_dataset(data, n=14, seed=5, size=(60, 120))
    torch.manual_seed(0)
    import segmentation_models_pytorch as smp

    model = smp.FPN("resnet18", encoder_weights=None, classes=5, decoder_pyramid_channels=32,
                    decoder_segmentation_channels=32)
    ckpt = base / "model.pth"
    save_checkpoint(ckpt, model, arch="FPN", encoder="resnet18", classes=CLASSES, img_size=(64, 64))
    return base, data, ckpt


def _args(ckpt, data, out, *extra):
    return ["--model_path", str(ckpt), "--data_root", str(data), "--output_dir", str(out), "--num_samples", "2",
            "--max_activation_maps", "4", "--batch_size", "4", "--no_progress", "--workers", "2", *extra]


def _split_names(data, split="test"):
    with open(data / "dataset_split.csv") as fh:
        return [r["img_name"] for r in csv.DictReader(fh) if r["set"] == split]


def test_compare_run_writes_every_file(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "compare"
    assert main("scorecam", _args(ckpt, data, out, "--compare", "--save_raw")) == 0
    for i in range(2):
        for c in CLASSES:
            for sub, kind in (("tpfpfn_maps", "tpfpfn"), ("scorecam_maps", "scorecam"), ("gradcam_maps", "gradcam")):
                png = out / sub / f"sample{i}_{kind}_{c}.png"
                assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert (out / "comparison" / f"sample{i}_comparison.png").is_file()
        raw = np.load(out / "raw_maps" / f"sample{i}.npz")
        assert raw["scorecam"].shape == raw["gradcam"].shape == (5, *raw["pred"].shape)
        assert list(raw["classes"]) == CLASSES and str(raw["region"]) == "pred"
        assert str(raw["image_name"]) == _split_names(data)[i]
        assert np.isfinite(raw["scorecam"]).all()
        for c in range(5):  # scaled to [0, 1] on the photograph (padding cropped), or all zeros
            m = raw["scorecam"][c]
            assert m.min() == 0 and m.max() in (0.0, 1.0) or abs(m.max() - 1) < 1e-6
        assert "scorecam_weights" in raw and "scorecam_raw" in raw
        # maps are on the original photograph: the image's size, not the padded input's
        assert raw["pred"].shape == (120, 60)
    assert not list(out.rglob("*.part*")), "temporary files left behind"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] and manifest["versions"]["torch"] == torch.__version__
    assert 0 <= manifest["timing"]["writing_share"] and manifest["samples"]["explained"] == 2
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 10 and {"iou", "dice", "tp", "fp", "fn", "scorecam_energy_in_gt", "gradcam_seconds"} <= set(rows[0])


def test_summary_numbers_match_the_masks(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "gradcam"
    assert main("gradcam", _args(ckpt, data, out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    raw = np.load(out / "raw_maps" / "sample0.npz")
    for row in (r for r in summary if r["sample"] == "sample0"):
        c = CLASSES.index(row["class"])
        g, p = raw["gt"] == c, raw["pred"] == c
        assert row["tp"] == int((g & p).sum()) and row["fp"] == int((p & ~g).sum()) and row["fn"] == int((g & ~p).sum())
    assert (out / "gradcam_maps" / "sample1_gradcam_seed.png").is_file()
    assert not (out / "scorecam_maps").exists()


def test_class_metrics_on_a_crafted_case():
    gt = np.zeros((4, 6), np.uint8)
    gt[:2, :3] = 1                      # 6 pixels of class 1
    pred = np.zeros((4, 6), np.uint8)
    pred[:2, 1:4] = 1                   # 6 pixels, 4 of them right
    cam = np.zeros((4, 6), np.float32)
    cam[0, 0], cam[0, 3], cam[3, 5] = 1.0, 0.5, 0.5
    row = class_metrics(gt, pred, cam, 1)
    assert (row["tp"], row["fp"], row["fn"]) == (4, 2, 2)
    assert row["iou"] == pytest.approx(4 / 8) and row["dice"] == pytest.approx(8 / 12)
    assert row["energy_in_gt"] == pytest.approx(1.0 / 2.0) and row["energy_in_pred"] == pytest.approx(0.5 / 2.0)
    absent = class_metrics(gt, pred, np.zeros_like(cam), 3)
    assert absent["iou"] is None and absent["energy_in_gt"] is None


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href")]


def test_gallery_links_resolve(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "compare"
    if not (out / "index.html").exists():
        pytest.skip("depends on test_compare_run_writes_every_file")
    parser = _Links()
    parser.feed((out / "index.html").read_text())
    files = [r for r in parser.refs if not r.startswith("#")]
    assert len(files) >= 2 * 16
    from urllib.parse import unquote

    for ref in files:
        assert not re.match(r"^[a-z]+://|^/", ref), ref
        assert (out / unquote(ref)).is_file(), ref


def test_resume_after_a_run_killed_mid_way(tiny_run, monkeypatch):
    base, data, ckpt = tiny_run
    out = base / "resume"
    import xai.render as render

    real = render.save_heatmap_figure
    calls = {"n": 0}

    def dies_on_sample1(path, *a, **k):
        if "sample1_" in str(path):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # the run is stopped half-way through sample1's figures
        return real(path, *a, **k)

    monkeypatch.setattr(render, "save_heatmap_figure", dies_on_sample1)
    assert main("scorecam", _args(ckpt, data, out)) == 130
    assert (out / "samples" / "sample0.json").is_file() and not (out / "samples" / "sample1.json").exists()
    assert not list(out.rglob("*.part*"))
    kept = {p: p.stat().st_mtime_ns for p in (out / "scorecam_maps").glob("sample0_*.png")}
    monkeypatch.setattr(render, "save_heatmap_figure", real)

    import xai.scorecam as sc

    explained = []
    real_explain = sc.ScoreCAM.explain
    monkeypatch.setattr(sc.ScoreCAM, "explain", lambda self, x, **k: explained.append(1) or real_explain(self, x, **k))
    assert main("scorecam", _args(ckpt, data, out, "--resume")) == 0
    assert len(explained) == 1, "only the unfinished sample is explained again"
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert len(list((out / "scorecam_maps").glob("sample1_*.png"))) == 5
    assert len(json.loads((out / "summary.json").read_text())) == 10
    explained.clear()  # other options: nothing written under them is reused
    assert main("scorecam", _args(ckpt, data, out, "--resume", "--region", "all")) == 0
    assert len(explained) == 2


@pytest.mark.parametrize("mutate,message", [
    (lambda a, t: a.__setitem__(1, str(t / "missing.pth")), "model file not found"),
    (lambda a, t: a.__setitem__(3, str(t / "nowhere")), "data root not found"),
    (lambda a, t: a.extend(["--split", "holdout"]), "unknown split 'holdout'"),
    (lambda a, t: a.extend(["--target_layer", "encoder.layer7"]), "unknown target layer 'encoder.layer7'"),
    (lambda a, t: a.extend(["--classes", "leaf"]), "unknown class(es) leaf"),
])
def test_bad_input_is_one_line_and_nonzero(tiny_run, tmp_path, capsys, mutate, message):
    base, data, ckpt = tiny_run
    args = _args(ckpt, data, tmp_path / "out")
    mutate(args, tmp_path)
    assert main("scorecam", args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1] and "Traceback" not in "\n".join(err)


def test_class_count_mismatch_is_refused(tiny_run, tmp_path, capsys):
    base, data, ckpt = tiny_run
    import segmentation_models_pytorch as smp

    four = smp.FPN("resnet18", encoder_weights=None, classes=4, decoder_pyramid_channels=32,
                   decoder_segmentation_channels=32)
    path = tmp_path / "four.pth"
    torch.save(four.state_dict(), path)
    assert main("scorecam", _args(path, data, tmp_path / "o", "--encoder", "resnet18")) == 2
    err = capsys.readouterr().err
    assert "4" in err and "5" in err and "Traceback" not in err


def test_scripts_run_as_users_type_them(tiny_run):
    base, data, ckpt = tiny_run
    proc = subprocess.run([sys.executable, str(ROOT / "visualize_pretrained_model.py"), "--model_path",
                           str(base / "nope.pth")], capture_output=True, text=True, cwd=base)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: model file not found: {base / 'nope.pth'}"
    help_text = subprocess.run([sys.executable, str(ROOT / "visualize_scorecam.py"), "--help"],
                               capture_output=True, text=True).stdout
    for flag, default in (("--num_samples", "5"), ("--split", "test"), ("--output_dir", "scorecam_visualizations"),
                          ("--batch_size", "32"), ("--max_activation_maps", "None")):
        text = " ".join(help_text.split())
        entry = text[text.index(f" {flag} "):]
        assert entry[entry.index("(default:"):].startswith(f"(default: {default})"), flag
