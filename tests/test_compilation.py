"""--compile and --cudnn_benchmark (xai.compilation): which forwards they reach, one compilation per model,
state restored, and a real torch.compile giving the maps of the uncompiled model."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import torch

import xai
from tests.helpers import image_batch, tiny_convnet
from xai import compilation
from xai.metrics.faithfulness import Faithfulness
from xai.modeling import ScoredModel


class _Recorder:
    """Stands in for torch.compile: records each compilation and the batch of every compiled call."""

    def __init__(self) -> None:
        self.compiled: list[torch.nn.Module] = []
        self.calls: list[int] = []

    def __call__(self, model: torch.nn.Module, **kwargs: Any) -> Any:
        self.compiled.append(model)

        def run(x: torch.Tensor) -> Any:
            self.calls.append(x.shape[0])
            return model(x)

        return run


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    rec = _Recorder()
    monkeypatch.setattr(torch, "compile", rec)
    return rec


def test_only_the_batched_forwards_are_compiled_once_per_model(recorder):
    model = tiny_convnet(classes=3)
    x = image_batch(1, 16, 16)
    cam = xai.ScoreCAM(model, target_layer="features.1", compile=True, batch_size=3, memory_format="contiguous")
    maps = cam(x, classes=[1, 2])
    assert recorder.compiled == [model]
    assert recorder.calls == [3, 3, 2]  # the 8 masked images; not the input, not the baseline
    plain = xai.ScoreCAM(model, target_layer="features.1", batch_size=3, memory_format="contiguous")
    assert torch.equal(plain(x, classes=[1, 2]), maps)
    valid = torch.ones(16, 16, dtype=torch.bool)
    regions = torch.stack([torch.ones(16, 16, dtype=torch.bool), torch.zeros(16, 16, dtype=torch.bool)])
    faith = Faithfulness(model, x, [1, 2], regions, valid, batch_size=4, compile=True)
    faith.deletion({"scorecam": maps}, steps=4)
    assert recorder.compiled == [model]  # the evaluation shares the model's compilation
    assert len(recorder.calls) > 3


def test_logit_scores_through_a_head_activation_and_hooked_passes_run_uncompiled(recorder):
    from tests.helpers import tiny_fpn

    model = tiny_fpn(activation="sigmoid")
    scored = ScoredModel(model, "logit", compile=True)
    out, _ = scored.forward(image_batch(2, 64, 64), batched=True)
    assert recorder.calls == [] and out.shape[0] == 2
    prob = ScoredModel(model, "prob", compile=True)
    prob.forward(image_batch(2, 64, 64), batched=True)
    prob.forward(image_batch(1, 64, 64))  # not batched
    prob.forward(image_batch(3, 64, 64), through=lambda t: model(t), batched=True)  # a part of the model
    assert recorder.calls == [2]


def test_cudnn_benchmark_is_on_only_inside_batched_forwards_and_restored():
    seen: list[bool] = []

    class Watch(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.backends.cudnn.benchmark)
            return x[:, :2]

    before = torch.backends.cudnn.benchmark
    scored = ScoredModel(Watch(), "prob", cudnn_benchmark=True)
    scored.forward(torch.zeros(1, 3, 4, 4), batched=True)
    scored.forward(torch.zeros(1, 3, 4, 4))
    assert seen == [True, before] and torch.backends.cudnn.benchmark == before
    with pytest.raises(RuntimeError), compilation.cudnn_benchmark(True):
        raise RuntimeError("injected")
    assert torch.backends.cudnn.benchmark == before
    torch.backends.cudnn.benchmark = True
    try:
        with compilation.cudnn_benchmark(False):  # off: a user's own setting is left alone
            assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None, reason="inductor needs a C compiler")
def test_a_real_compilation_gives_the_maps_of_the_uncompiled_model():
    model = tiny_convnet(classes=3, seed=2)
    x = image_batch(1, 16, 16, seed=5)
    options = {"target_layer": "features.1", "batch_size": 4, "memory_format": "contiguous", "precision": "fp32"}
    expected = xai.ScoreCAM(model, **options)(x, classes=[1, 2])
    got = xai.ScoreCAM(model, compile=True, **options)(x, classes=[1, 2])
    assert torch.allclose(got, expected, atol=1e-5)


def test_the_compiled_module_goes_with_its_model(recorder):
    import gc
    import weakref

    model = tiny_convnet(classes=3)
    keys = set(model.state_dict())
    assert compilation.compiled(model) is compilation.compiled(model) and recorder.compiled == [model]
    assert set(model.state_dict()) == keys and len(list(model.children())) == 1  # no submodule, no weights
    gone = weakref.ref(model)
    recorder.compiled.clear()  # the stand-in's own record of it
    del model
    gc.collect()
    assert gone() is None
