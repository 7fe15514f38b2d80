"""Both CLIs end to end on a tiny synthetic split: file names, summaries, gallery, methods, errors."""

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

from tests.helpers import run_args
from xai.cli import main
from xai.config import DEFAULT_CLASSES
from xai.data import Letterbox
from xai.mapfile import load_maps

ROOT = Path(__file__).resolve().parent.parent
CLASSES = list(DEFAULT_CLASSES)


def _args(ckpt, data, out, *extra):
    return run_args(ckpt, data, out, *extra)


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
        assert raw["scorecam"].shape == raw["gradcam"].shape == (5, *raw["pred_input"].shape) == (5, 64, 64)
        assert list(raw["classes"]) == CLASSES and str(raw["region"]) == "pred"
        assert str(raw["image_name"]) == _split_names(data)[i]
        assert np.isfinite(raw["scorecam"]).all()
        box = Letterbox.from_array(raw["letterbox"])
        valid = box.valid()
        for k in range(5):  # at the input resolution, scaled to [0, 1] on the photograph's pixels, 0 on padding
            m = raw["scorecam"][k]
            assert (m.min() == 0 and m.max() in (0.0, 1.0)) or abs(m.max() - 1) < 1e-6
            assert not m[~valid].any()
        assert "scorecam_weights" in raw and "scorecam_raw" in raw
        # gt is on the original photograph, and so are the prediction and maps mapped back through the letterbox
        assert "pred" not in raw and raw["gt"].shape == box.orig_hw == (120, 60)
        assert load_maps(out / "raw_maps" / f"sample{i}.npz").pred.shape == (120, 60)
        assert load_maps(out / "raw_maps" / f"sample{i}.npz").on_photograph("scorecam").shape == (5, 120, 60)
    assert not list(out.rglob("*.part*")), "temporary files left behind"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] and manifest["versions"]["torch"] == torch.__version__
    assert manifest["samples"] == {"explained": 2, "skipped": [], "runs_mixed": False}
    assert manifest["timing"]["render_seconds"] > 0 and len(manifest["timing"]["workers"]) == 1
    assert manifest["engines"]["scorecam"]["max_activation_maps"] == 4
    # the evidence-chosen defaults (docs/evidence.md, "Choosing the defaults"): decoder output, centred weights
    assert (
        manifest["engines"]["scorecam"]["target_layer"] == manifest["engines"]["gradcam"]["target_layer"] == "decoder"
    )
    assert manifest["engines"]["scorecam"]["weights"] == "centred"
    for i in range(2):  # every predicted class gets a map (raw weights with the zero baseline can blank one)
        raw = np.load(out / "raw_maps" / f"sample{i}.npz")
        on_photo = Letterbox.from_array(raw["letterbox"]).valid()
        for k in range(5):
            assert raw["scorecam"][k].max() == float(((raw["pred_input"] == k) & on_photo).any()), (i, k)
    assert set(manifest["engines"]["scorecam"]) == {
        "target_layer",
        "eigen_smooth",
        "aug_smooth",
        "score",
        "score_reduction",
        "progress",
        "region",
        "contrast",
        "boundary_width",
        "junction",
        "baseline",
        "weights",
        "seed",
        "max_activation_maps",
        "channel_selection",
        "precision",
        "memory_format",
        "batch_size",
        "compile",
        "cudnn_benchmark",
    }  # the options dataclass, nothing private
    assert manifest["timing"]["workers"][0]["batch_sizes"] == {"scorecam": [4]}  # what ran (gradcam has no batches)
    assert set(manifest["engines"]["gradcam"]) == {
        *("target_layer", "score", "score_reduction", "region", "progress"),
        *("contrast", "boundary_width", "junction"),  # the region and score options every method has
        *("eigen_smooth", "aug_smooth"),  # every CAM's
    }
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {"iou", "dice", "tp", "fp", "fn", "scorecam_energy_in_gt", "gradcam_seconds"} <= set(
        rows[0]
    )


def test_summary_numbers_match_the_masks(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "gradcam"
    assert main("gradcam", _args(ckpt, data, out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    raw = load_maps(out / "raw_maps" / "sample0.npz")
    for row in (r for r in summary if r["sample"] == "sample0"):
        c = CLASSES.index(row["class"])
        g, p = raw.gt == c, raw.pred == c
        assert row["tp"] == int((g & p).sum()) and row["fp"] == int((p & ~g).sum()) and row["fn"] == int((g & ~p).sum())
    assert (out / "gradcam_maps" / "sample1_gradcam_seed.png").is_file()
    assert not (out / "scorecam_maps").exists()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href")]


def test_gallery_links_resolve(tiny_run):
    base, _data, _ckpt = tiny_run
    out = base / "compare"
    if not (out / "gallery.html").exists():
        pytest.skip("depends on test_compare_run_writes_every_file")
    parser = _Links()
    parser.feed((out / "gallery.html").read_text())
    files = [r for r in parser.refs if not r.startswith("#")]
    assert len(files) >= 2 * 16
    from urllib.parse import unquote

    for ref in files:
        assert not re.match(r"^[a-z]+://|^/", ref), ref
        assert (out / unquote(ref)).is_file(), ref


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda a, t: a.__setitem__(1, str(t / "missing.pth")), "model file not found"),
        (lambda a, t: a.__setitem__(3, str(t / "nowhere")), "data root not found"),
        (lambda a, t: a.extend(["--target_layer", "encoder.layer7"]), "unknown target layer 'encoder.layer7'"),
        (lambda a, t: a.extend(["--classes", "leaf"]), "unknown class(es) leaf"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tiny_run, tmp_path, capsys, mutate, message):
    _base, data, ckpt = tiny_run
    args = _args(ckpt, data, tmp_path / "out")
    mutate(args, tmp_path)
    assert main("scorecam", args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1] and "Traceback" not in "\n".join(err)


def test_class_count_mismatch_is_refused(tiny_run, tmp_path, capsys):
    _base, data, _ckpt = tiny_run
    import segmentation_models_pytorch as smp

    four = smp.FPN(
        "resnet18", encoder_weights=None, classes=4, decoder_pyramid_channels=32, decoder_segmentation_channels=32
    )
    path = tmp_path / "four.pth"
    torch.save(four.state_dict(), path)
    assert main("scorecam", _args(path, data, tmp_path / "o", "--encoder", "resnet18")) == 2
    err = capsys.readouterr().err
    assert "4" in err and "5" in err and "Traceback" not in err


def test_scripts_run_as_users_type_them(tiny_run):
    base, _data, _ckpt = tiny_run
    proc = subprocess.run(
        [sys.executable, str(ROOT / "visualize_pretrained_model.py"), "--model_path", str(base / "nope.pth")],
        capture_output=True,
        text=True,
        cwd=base,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: model file not found: {base / 'nope.pth'}"
    help_text = subprocess.run(
        [sys.executable, str(ROOT / "visualize_scorecam.py"), "--help"], capture_output=True, text=True
    ).stdout
    for flag, default in (
        ("--num_samples", "5"),
        ("--split", "test"),
        ("--output_dir", "scorecam_visualizations"),
        ("--batch_size", "auto; uncertainty 32"),
        ("--seed", "0"),
    ):
        found = re.search(rf"^  {flag}\b", help_text, re.MULTILINE)  # the flag's own entry
        assert found is not None, flag
        own = help_text[found.start() :]
        entry = " ".join(own.split())
        assert entry[entry.index("(default:") :].startswith(f"(default: {default})"), flag
    text = " ".join(help_text.split())
    assert "(default: None)" not in text
    assert "chosen by channel_selection (faster; all: no limit) [scorecam, iscam, sscam] (default: all)" in text


def test_methods_choose_what_runs_and_what_the_comparison_shows(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "three"
    assert main("gradcam", _args(ckpt, data, out, "--methods", "gradcam,layercam,scorecam", "--num_samples", "1")) == 0
    for folder, kind in (("gradcam_maps", "gradcam"), ("layercam_maps", "layercam"), ("scorecam_maps", "scorecam")):
        assert len(list((out / folder).glob(f"sample0_{kind}_*.png"))) == 5
    assert (out / "comparison" / "sample0_comparison.png").is_file()
    raw = np.load(out / "raw_maps" / "sample0.npz")
    assert {"gradcam", "layercam", "scorecam"} <= set(raw.files)
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert {"layercam_energy_in_gt", "layercam_seconds", "scorecam_energy_in_pred"} <= set(header)
    page = (out / "gallery.html").read_text()
    assert "LayerCAM" in page and "Grad-CAM vs LayerCAM vs Score-CAM" in page
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["methods"]) == ["gradcam", "layercam", "scorecam"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--methods", "scorecam", "--compare"], "--compare needs two or more --methods"),
        (["--methods", "gradcam,nocam"], "unknown method 'nocam'"),
        (["--all"], "not allowed with argument --num_samples"),
        (["--split", "holdout"], "invalid choice: 'holdout'"),
        (["--map_dtype", "int4"], "argument --map_dtype: invalid choice: 'int4'"),
    ],
)
def test_option_conflicts_are_one_line(tiny_run, tmp_path, capfd, extra, message):
    _base, data, ckpt = tiny_run
    code: str | int | None
    try:
        code = main("scorecam", _args(ckpt, data, tmp_path / "o", *extra))
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_console_entry_points_run_the_same_cli(tiny_run):
    base, _data, _ckpt = tiny_run
    for cmd in ([sys.executable, "-m", "xai", "gradcam", "--help"], [sys.executable, "-m", "xai", "--help"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=base)
        assert proc.returncode == 0 and "usage: seedling-xai" in proc.stdout, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "xai", "scorecam", "--model_path", str(base / "nope.pth")],
        capture_output=True,
        text=True,
        cwd=base,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: model file not found: {base / 'nope.pth'}"


def test_a_file_the_run_cannot_write_is_one_line(tiny_run, tmp_path, capsys, monkeypatch):
    """Permissions or a read-only disk (an OSError other than a full disk): one line naming the file, exit 2."""
    import xai.mapfile as mapfile

    _base, data, ckpt = tiny_run

    def read_only(path, **arrays):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mapfile, "write_npz", read_only)  # in this process: --workers 0
    assert main("gradcam", [*run_args(ckpt, data, tmp_path / "ro"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and err[-1].endswith("sample0.npz: Permission denied")
    assert "Traceback" not in "\n".join(err)


def test_the_upstream_occlusion_and_uncertainty_commands_as_their_users_type_them(tiny_run):
    base, data, ckpt = tiny_run
    common = ["--model_path", str(ckpt), "--data_root", str(data), "--num_samples", "1", "--no_progress"]
    occlusion = [sys.executable, str(ROOT / "visualize_occlusion.py"), *common]
    proc = subprocess.run(
        [*occlusion, "--patch_size", "16", "--stride", "8", "--occlusion_value", "mean"],
        capture_output=True,
        text=True,
        cwd=base,
    )
    assert proc.returncode == 0, proc.stderr
    out = base / "occlusion_visualizations"
    for c in CLASSES:
        assert (out / "occlusion_maps" / f"sample0_occlusion_{c}.png").is_file()
        assert (out / "tpfpfn_maps" / f"sample0_tpfpfn_{c}.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engines"]["occlusion"]["patch_size"] == 16 and manifest["engines"]["occlusion"]["stride"] == 8
    proc = subprocess.run([*occlusion, "--patch_size", "100"], capture_output=True, text=True, cwd=base)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
        "error: --patch_size 100 is larger than the model's input (64×64 pixels)"
    )
    uncertainty = [sys.executable, str(ROOT / "visualize_uncertainty.py"), *common, "--num_mc_samples", "4"]
    proc = subprocess.run(uncertainty, capture_output=True, text=True, cwd=base)
    assert proc.returncode == 0, proc.stderr
    out = base / "uncertainty_visualizations"
    assert (out / "uncertainty_maps" / "sample0_uncertainty.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "uncertainty_maps").glob("sample0_uncertainty_*.png"))) == 5
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert "uncertainty_error_auroc" in header
    assert "Uncertainty: summary" in (out / "gallery.html").read_text()


QUICK_FLAGS = [
    "--patch_size", "32", "--num_masks", "8", "--n_samples", "6", "--n_segments", "6", "--steps", "3",
    "--shap_samples", "2", "--num_mc_samples", "3", "--noise_samples", "2", "--integration_steps", "2",
]  # fmt: skip


def test_every_registered_method_runs_through_the_pipeline_and_the_report(tiny_run):
    from xai.methods import method_names

    base, data, ckpt = tiny_run
    out = base / "everything"
    methods = ",".join(method_names())
    args = [*_args(ckpt, data, out, "--methods", methods, "--evaluate", "--no_road"), *QUICK_FLAGS]
    assert main("gradcam", [*args, "--eval_steps", "3", "--sanity_samples", "0", "--num_samples", "1"]) == 0
    for name in method_names():
        assert len(list((out / f"{name}_maps").glob(f"sample0_{name}_*.png"))) == 5, name
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["variant"] for r in rows if r["method"] != "context_dependence"} == {
        *method_names(),
        "random",
        "probability",
        "sobel",
    }
    auroc = {r["variant"] for r in rows if r["metric"] == "error_auroc"}
    assert auroc == {"uncertainty"}  # a measure of the uncertainty family only
    report = (out / "report.md").read_text()
    assert "Error AUROC" in report and "| kernel_shap |" in report
    page = (out / "gallery.html").read_text()
    assert "Eigen-CAM" in page and "KernelSHAP" in page


def test_every_entry_point_prints_its_version_and_exits_0(capsys, monkeypatch):
    """--version on each CLI (the four scripts, seedling-xai and its commands, python -m xai.<module>):
    `seedling-xai <xai.__version__>` on stdout, exit 0, no other option needed."""
    import runpy

    import xai
    from xai import inspection, synth, train
    from xai.cli import COMMANDS, console_main

    expected = f"seedling-xai {xai.__version__}\n"

    def printed(call) -> str:
        with pytest.raises(SystemExit) as exc:  # argparse's version action exits
            call()
        assert exc.value.code == 0
        out, err = capsys.readouterr()
        assert err == ""
        return out

    for script in ("visualize_scorecam", "visualize_pretrained_model", "visualize_occlusion", "visualize_uncertainty"):
        path = str(ROOT / f"{script}.py")
        monkeypatch.setattr(sys, "argv", [path, "--version"])
        assert printed(lambda path=path: runpy.run_path(path, run_name="__main__")) == expected, script
    for command in COMMANDS:  # seedling-xai <command> --version (and python -m xai <command> --version)
        assert printed(lambda command=command: console_main([command, "--version"])) == expected, command
    for module in (synth, train, inspection):  # python -m xai.synth / xai.train / xai.inspection --version
        assert printed(lambda module=module: module.main(["--version"])) == expected, module.__name__
    assert console_main(["--version"]) == 0  # seedling-xai --version
    assert capsys.readouterr() == (expected, "")
    proc = subprocess.run([sys.executable, "-m", "xai", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, "")
