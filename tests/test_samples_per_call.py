"""Several samples per call (--samples_per_call): every method's maps equal those of one sample at a time,
the sweeps' batches span the samples, and a sample the model fails on is the only one skipped."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

import xai.pipeline.explain_stage as stage
from tests.helpers import image_batch, run_args, tiny_fpn
from xai.cli import main
from xai.mapfile import load_maps
from xai.methods import get_method, method_names

SMALL: dict[str, dict[str, Any]] = {  # options that keep each method fast on a 64×64 input
    "occlusion": {"patch_size": 16},
    "rise": {"num_masks": 40},
    "kernel_shap": {"n_samples": 20, "n_segments": 8},
    "lime": {"n_samples": 20, "n_segments": 8},
    "smoothgrad": {"nt_samples": 3},
    "gradient_shap": {"shap_samples": 3},
    "integrated_gradients": {"steps": 4},
    "uncertainty": {"num_mc_samples": 3, "sampling": "flips"},
    "scorecam": {"max_activation_maps": 6, "batch_size": 4},  # 12 masked images: chunks of 4 span the images
    "ablationcam": {"batch_size": 5},
}


@pytest.mark.parametrize("name", method_names())
def test_a_batch_of_images_gives_each_image_its_own_maps(name):
    cls = get_method(name).cls
    if not cls.batch_invariant:
        pytest.skip(f"{name} draws its random parts for the whole batch: the pipeline calls it per sample")
    engine = cls(tiny_fpn(seed=0), **SMALL.get(name, {}))
    x = image_batch(2, 64, 64, seed=3)
    together = engine.explain(x, classes=[1, 3])
    alone = [engine.explain(x[i : i + 1], classes=[1, 3]) for i in range(2)]
    for i, one in enumerate(alone):
        part = together.sample(i)
        assert part.maps.shape == one.maps.shape == (1, 2, 64, 64)
        assert torch.equal(part.empty, one.empty)
        assert float((part.maps - one.maps).abs().max()) < 1e-4
        for key, value in one.extra.items():
            assert part.extra[key].shape == value.shape


def test_score_cams_random_channels_are_drawn_alike_for_every_image():
    engine = get_method("scorecam").cls(tiny_fpn(seed=0), max_activation_maps=3, channel_selection="random")
    x = image_batch(2, 64, 64, seed=3)
    together = engine.explain(x, classes=[1, 3]).sample(1)
    alone = engine.explain(x[1:], classes=[1, 3])
    assert float((together.maps - alone.maps).abs().max()) < 1e-4


def test_mc_dropout_is_declared_batch_dependent():
    assert not get_method("uncertainty").cls.batch_invariant


def _maps(out, n):
    return [load_maps(out / "raw_maps" / f"sample{i}.npz").maps for i in range(n)]


def test_grouped_run_writes_the_maps_of_a_sample_by_sample_run(tiny_run, tmp_path, monkeypatch):
    _base, data, ckpt = tiny_run
    methods = "scorecam,occlusion"
    # float32 maps files: the engines' maps as made (float16 could put maps 1e-6 apart one float16 step apart)
    common: tuple[str, ...] = ("--methods", methods, "--split", "train", "--num_samples", "3", "--map_dtype", "float32")
    common += ("--classes", "hypocotyl", "root")
    calls: list[int] = []
    real = get_method("scorecam").cls.explain

    def counted(self, x, *a, **kw):
        calls.append(int(x.shape[0]))
        return real(self, x, *a, **kw)

    monkeypatch.setattr(get_method("scorecam").cls, "explain", counted)
    assert main("scorecam", run_args(ckpt, data, tmp_path / "one", *common)) == 0
    assert calls == [1, 1, 1]
    calls.clear()
    assert main("scorecam", run_args(ckpt, data, tmp_path / "two", *common, "--samples_per_call", "2")) == 0
    assert calls == [2, 1]  # the Score-CAM sweep of the first call holds masked images of 2 samples (batch 4)
    for one, two in zip(_maps(tmp_path / "one", 3), _maps(tmp_path / "two", 3), strict=True):
        assert one.keys() == two.keys() == set(methods.split(","))
        for m in one:
            np.testing.assert_allclose(two[m], one[m], atol=1e-4, rtol=0)
    rows = json.loads((tmp_path / "two" / "samples" / "sample0.json").read_text())["seconds"]
    assert rows["scorecam"] > 0 and rows["model"] > 0


def test_a_sample_the_model_fails_on_is_the_only_one_skipped_of_its_group(tiny_run, tmp_path, monkeypatch, capsys):
    _base, data, ckpt = tiny_run
    current: list[int] = []
    real_samples, real_explain = stage.explain_samples, get_method("gradcam").cls.explain

    def tracking(items, execution):
        current[:] = [item.index for item in items]
        return real_samples(items, execution)

    def fails_on_sample_1(self, x, **kw):
        if 1 in current:
            raise RuntimeError("bad sample\nmore detail")
        return real_explain(self, x, **kw)

    monkeypatch.setattr(stage, "explain_samples", tracking)
    monkeypatch.setattr(get_method("gradcam").cls, "explain", fails_on_sample_1)
    out = tmp_path / "out"
    args = run_args(
        ckpt, data, out, "--split", "train", "--num_samples", "3", "--samples_per_call", "3", "--classes", "root"
    )
    assert main("gradcam", args) == 0
    records = {p.name: json.loads(p.read_text())["status"] for p in (out / "samples").iterdir()}
    assert records == {"sample0.json": "done", "sample1.json": "skipped", "sample2.json": "done"}
    assert "the model failed on this sample: RuntimeError: bad sample" in capsys.readouterr().err


def test_samples_per_call_below_one_is_one_line(tiny_run, tmp_path, capsys):
    _base, data, ckpt = tiny_run
    assert main("gradcam", run_args(ckpt, data, tmp_path / "o", "--samples_per_call", "0")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: --samples_per_call must be at least 1, got 0"


def test_a_group_out_of_memory_is_explained_sample_by_sample_then_in_smaller_groups(
    tiny_run, tmp_path, monkeypatch, caplog
):
    _base, data, ckpt = tiny_run
    sizes: list[int] = []
    real = get_method("gradcam").cls.explain

    def small_device(self, x, **kw):  # a device that takes at most 2 images per call
        sizes.append(int(x.shape[0]))
        if x.shape[0] > 2:
            raise RuntimeError("CUDA error: out of memory")
        return real(self, x, **kw)

    monkeypatch.setattr(get_method("gradcam").cls, "explain", small_device)
    out = tmp_path / "out"
    args = run_args(
        ckpt, data, out, "--split", "train", "--num_samples", "7", "--samples_per_call", "4", "--classes", "root"
    )
    assert main("gradcam", args) == 0
    assert sizes == [4, 1, 1, 1, 1, 2, 1]  # 4 fail, one by one; then groups of 2 (the 7th alone)
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"sample{i}.json" for i in range(7)]
    assert "out of memory with 4 samples per call" in caplog.text
