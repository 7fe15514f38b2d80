"""xai.train: a tiny training run writes a safe checkpoint, metrics.json and (optionally) a whole-model pickle."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from xai import synth, train
from xai.checkpoint import FORMAT, load_model
from xai.errors import XAIError

CLASSES = ["background", "hypocotyl", "cotyledon", "root", "seed"]
REPO = Path(__file__).resolve().parent.parent


def _tiny_config(tmp_path: Path, data_root: Path, name: str = "tiny.yaml", **train_over) -> Path:
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    demo.update(img_size=[64, 32], data_root=str(data_root))
    demo["train"] = {"epochs": 1, "batch_size": 4, "lr": 0.001, "seed": 0, "threads": 1, **train_over}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(demo))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    synth.make_dataset(root, 7, seed=0, size=(40, 80))  # 5 train, 1 val, 1 test
    return root


def test_demo_config_is_valid():
    from xai.config import load_config

    cfg = load_config(REPO / "configs" / "demo.yaml")
    st = train._train_settings(cfg, "demo.yaml")
    assert cfg.arch == "FPN" and cfg.data_root == "data/demo" and cfg.fallback_data_root is None
    assert max(cfg.img_size) <= 256
    assert st["epochs"] >= 1 and st["threads"] <= 2


def test_tiny_training_run_writes_checkpoint_and_metrics(tmp_path, tiny_data):
    cfg = _tiny_config(tmp_path, tiny_data, crop=[32, 32])
    out = tmp_path / "ckpt" / "tiny_FPN.pth"
    pickle = tmp_path / "whole.pth"
    m = train.train(cfg, out, whole_model_pickle=pickle, progress=False)

    with safe_open(str(out), "pt") as f:  # the project's format: safetensors, the description in its header
        header = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    assert header["format"] == FORMAT
    meta = json.loads(header["meta"])
    assert meta["arch"] == "FPN" and meta["encoder"] == "resnet18" and meta["classes"] == CLASSES
    assert meta["img_size"] == [64, 32] and meta["activation"] is None
    assert len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert meta["model_kwargs"]["classes"] == 5 and meta["epoch"] == 1

    from xai.modeling import build_model

    model = build_model("FPN", "resnet18", 5)
    model.load_state_dict(state)
    assert load_model(out).kind == "project"

    metrics_path = tmp_path / "ckpt" / "tiny_FPN.metrics.json"
    data = json.loads(metrics_path.read_text())
    assert set(data["val_iou"]) == set(CLASSES)
    assert all(v is None or 0.0 <= v <= 1.0 for v in data["val_iou"].values())
    assert 0.0 <= data["mean_foreground_iou"] <= 1.0
    assert data["epochs"] == 1 and data["seconds"] > 0
    assert data["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # the GPU when there is one
    assert m["mean_foreground_iou"] == data["mean_foreground_iou"]

    whole = torch.load(pickle, map_location="cpu", weights_only=False)
    assert isinstance(whole, torch.nn.Module)
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(whole(x), model(x), atol=1e-5)


def test_training_is_reproducible(tmp_path, tiny_data):
    cfg = _tiny_config(tmp_path, tiny_data)
    a = train.train(cfg, tmp_path / "a.pth", progress=False)
    b = train.train(cfg, tmp_path / "b.pth", progress=False)
    assert a["val_iou"] == b["val_iou"]
    sa, sb = load_file(tmp_path / "a.pth"), load_file(tmp_path / "b.pth")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bad_inputs_fail_in_one_line(tmp_path, tiny_data):
    cfg = _tiny_config(tmp_path, tiny_data)
    with pytest.raises(XAIError, match="data root not found"):
        train.train(cfg, tmp_path / "x.pth", data_root=tmp_path / "missing", progress=False)
    with pytest.raises(XAIError, match="unknown train setting"):
        train.train(_tiny_config(tmp_path, tiny_data, "typo.yaml", epocs=3), tmp_path / "x.pth", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(XAIError, match="CUDA is not available"):
            train.train(cfg, tmp_path / "x.pth", device="cuda", progress=False)
    with pytest.raises(XAIError, match="crop"):
        train.train(_tiny_config(tmp_path, tiny_data, "crop.yaml", crop=[30, 30]), tmp_path / "x.pth", progress=False)

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xai.train",
            "--config",
            str(cfg),
            "--data_root",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "x.pth"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: data root not found") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pth").exists()


def test_progress_the_log_and_the_history_of_each_epoch(tmp_path, tiny_data, caplog, capsys):
    """With progress: a bar per epoch on stderr and one log line per epoch, word for word but for the numbers;
    an epoch before eval_from is trained, not evaluated; the metrics JSON holds the run's history."""
    cfg = _tiny_config(tmp_path, tiny_data, epochs=2, eval_from=2)
    with caplog.at_level("INFO", logger="xai.train"):
        m = train.train(cfg, tmp_path / "p.pth", progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "xai.train"]
    number = r"\d+\.\d{3}"
    assert len(lines) == 2, lines
    assert re.fullmatch(rf"epoch 1/2 loss {number} \(not evaluated\) \[\d+s\]", lines[0]), lines[0]
    per_class = " ".join(f"{c} {number}" for c in CLASSES[1:])
    assert re.fullmatch(
        rf"epoch 2/2 loss {number} val IoU {per_class} \| mean fg {number} \(best, saved\) \[\d+s\]", lines[1]
    )
    assert "epoch 1/2" in capsys.readouterr().err  # the bar
    history = m["history"]
    assert [sorted(h) for h in history] == [["epoch", "loss", "mean_foreground_iou"]] * 2
    assert history[0]["mean_foreground_iou"] is None and history[1]["mean_foreground_iou"] == m["mean_foreground_iou"]
    assert m["best_epoch"] == 2 and m["epochs"] == 2 and m["train"]["eval_from"] == 2
    assert m["checkpoint"] == str(tmp_path / "p.pth") and m["metrics_path"] == str(tmp_path / "p.metrics.json")
    assert json.loads((tmp_path / "p.metrics.json").read_text())["history"] == history
    caplog.clear()
    with caplog.at_level("INFO", logger="xai.train"):
        train.train(cfg, tmp_path / "q.pth", progress=False)
    assert not [r for r in caplog.records if r.name == "xai.train"] and "epoch" not in capsys.readouterr().err
