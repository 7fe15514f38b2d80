"""Runs across processes: --shard K/N with --finalize, torchrun with 2 gloo ranks, a rank killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import run_args
from xai.cli import main
from xai.errors import XAIError
from xai.pipeline.distributed import Shard, parse_shard

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "visualize_pretrained_model.py")


def test_shards_deal_every_sample_once_and_balanced():
    indices = list(range(11))
    shards = [Shard(k, 3).take(indices) for k in range(3)]
    assert sorted(i for s in shards for i in s) == indices
    assert [len(s) for s in shards] == [4, 4, 3]
    assert parse_shard("2/5") == Shard(2, 5)
    for bad in ("5/5", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(XAIError, match="--shard"):
            parse_shard(bad)


def _files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def _assert_complete_and_readable(out: Path, n: int) -> None:
    records = sorted((out / "samples").glob("sample*.json"))
    assert sorted(p.name for p in records) == sorted(f"sample{i}.json" for i in range(n))  # none missing
    for p in records:
        rec = json.loads(p.read_text())
        assert rec["status"] == "done"
        for per_class in rec["figures"].values():
            for rel in per_class.values():
                assert cv2.imread(str(out / rel)) is not None, rel
        assert np.load(out / rec["raw"])["gradcam"].shape[0] == 5
    rows = json.loads((out / "summary.json").read_text())
    assert sorted({r["sample"] for r in rows}) == sorted(f"sample{i}" for i in range(n)) and len(rows) == 5 * n
    assert not list(out.rglob("*.part*"))


def _same_maps(a: Path, b: Path, n: int, tol: float = 1e-4) -> None:
    for i in range(n):
        ma, mb = np.load(a / "raw_maps" / f"sample{i}.npz"), np.load(b / "raw_maps" / f"sample{i}.npz")
        assert np.abs(ma["gradcam"] - mb["gradcam"]).max() <= tol
        assert np.array_equal(ma["pred_input"], mb["pred_input"])


N = 5  # train samples used by these tests


def _args(ckpt, data, out, *extra):
    """float32 maps files: the maps of two process layouts compared as the engines made them (float16 could
    put maps 1e-6 apart one float16 step apart)."""
    return run_args(ckpt, data, out, "--split", "train", "--num_samples", str(N), "--map_dtype", "float32", *extra)


@pytest.fixture(scope="module")
def single(tiny_run):
    base, data, ckpt = tiny_run
    out = base / "single"
    if not out.exists():
        assert main("gradcam", _args(ckpt, data, out)) == 0
    return out


def test_shards_then_finalize_equal_one_run(tiny_run, single, tmp_path):
    _base, data, ckpt = tiny_run
    out = tmp_path / "sharded"
    for k in range(2):
        assert main("gradcam", _args(ckpt, data, out, "--shard", f"{k}/2")) == 0
    assert not (out / "summary.json").exists()  # shards do not finalize
    assert main("gradcam", ["--finalize", str(out)]) == 0
    assert _files(out) == _files(single)
    _assert_complete_and_readable(out, N)
    _same_maps(out, single, N)


def _torchrun(ckpt, data, out, *extra, module=None, env=None):
    target = ["-m", module] if module else [SCRIPT]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--max-restarts",
        "0",
        *target,
        *_args(ckpt, data, out, "--device", "cpu", *extra),
    ]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def test_two_gloo_ranks_give_the_files_and_maps_of_one_process(tiny_run, single, tmp_path):
    _base, data, ckpt = tiny_run
    out = tmp_path / "ranks"
    proc = _torchrun(ckpt, data, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _files(out) == _files(single)
    _assert_complete_and_readable(out, N)
    _same_maps(out, single, N)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(w["rank"] for w in manifest["timing"]["workers"]) == [0, 1]  # every rank's timing
    records = [json.loads(p.read_text()) for p in (out / "samples").glob("*.json")]
    assert sorted(r["index"] for r in records if r["worker"]["rank"] == 1) == [1, 3]  # dealt round-robin


def test_a_rank_killed_mid_run_then_resume_completes(tiny_run, tmp_path):
    _base, data, ckpt = tiny_run
    out = tmp_path / "killed"
    proc = _torchrun(ckpt, data, out, "--workers", "0", module="tests.rank_killer", env={"XAI_TEST_KILL_RANK": "1"})
    assert proc.returncode != 0
    done = sorted(p.name for p in (out / "samples").glob("*.json"))
    assert "sample1.json" in done and "sample3.json" not in done  # rank 1 finished one sample, then died
    # resume with another number of processes (one): only the missing samples are explained
    assert main("gradcam", _args(ckpt, data, out, "--resume")) == 0
    _assert_complete_and_readable(out, N)  # every sample once in the summary, every file readable


def test_two_ranks_on_one_gpu_are_refused_before_any_work(monkeypatch):
    """Simulated node with 2 GPUs: 4 local ranks, or every rank sent to cuda:1, is one line at start;
    2 ranks get cuda:0 and cuda:1."""
    from xai.pipeline.distributed import Ranks

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    ranks = [Ranks(rank=r, world_size=2, local_rank=r, backend="nccl", local_world_size=2) for r in (0, 1)]
    assert [r.device(None) for r in ranks] == ["cuda:0", "cuda:1"]
    assert ranks[1].device("cuda") == "cuda:1" and ranks[1].device("cpu") == "cpu"
    with pytest.raises(XAIError, match="would put 2 ranks on one GPU"):
        ranks[0].device("cuda:1")
    crowded = Ranks(rank=3, world_size=4, local_rank=3, backend="nccl", local_world_size=4)
    with pytest.raises(XAIError, match="4 torchrun processes on this machine but 2 GPU"):
        crowded.device(None)
    alone = Ranks(rank=0, world_size=2, local_rank=0, backend="nccl", local_world_size=1)  # one rank per node
    assert alone.device("cuda:1") == "cuda:1"


def test_the_process_group_is_bound_to_the_ranks_gpu(monkeypatch):
    """init_process_group gets device_id=cuda:LOCAL_RANK (NCCL fails early, barrier knows its device)."""
    import torch.distributed as dist

    from xai.pipeline import distributed

    calls: dict = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set", d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.setdefault("init", kw))
    for key, value in {"WORLD_SIZE": "4", "RANK": "6", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(key, value)
    ranks = distributed.join_torchrun(None)
    assert ranks is not None and ranks.backend == "nccl" and ranks.shard.index == 6
    assert calls["set"] == torch.device("cuda", 2) and calls["init"]["device_id"] == torch.device("cuda", 2)
    assert calls["init"]["backend"] == "nccl"
