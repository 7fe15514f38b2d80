"""Automatic batch sizes (xai.memory, xai.batching): the measured memory, the chosen size, the CUDA path
simulated with a fake caching allocator, and the engines and the evaluation with batch_size auto."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

import xai
from tests.helpers import CountingModel, image_batch, tiny_convnet
from xai import memory
from xai.batching import Batches
from xai.errors import OutOfMemory
from xai.methods import get_method
from xai.metrics.faithfulness import Faithfulness

MB = 2**20


def test_live_bytes_counts_what_is_alive_at_once():
    conv1, conv2 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 3, 16, 16)  # made before the block: not counted
    out_bytes = 2 * 8 * 16 * 16 * 4
    with torch.inference_mode(), memory.LiveBytes() as counter:
        a = conv1(x)
        b = torch.relu_(a)  # in place: the same storage
        c = conv2(b).view(2, -1)  # a view of the new output adds nothing
        del a, b
        after_free = counter.live
    assert counter.peak == 2 * out_bytes
    assert after_free == out_bytes and c.numel() * 4 == out_bytes


def _allocating(fixed: int, per_image: int):
    """forward(b) that holds fixed + b·per_image bytes at its peak."""
    calls: list[int] = []

    def forward(b: int) -> None:
        calls.append(b)
        held = [torch.empty(fixed, dtype=torch.uint8), torch.empty(b * per_image, dtype=torch.uint8)]
        del held

    return forward, calls


@pytest.mark.parametrize(
    "free,cap,expected",
    [
        (100 * MB, 32, 16),  # 0.25 · 100 MB = 25 MB: (25 − 3) / 1 = 22 images -> 16
        (4000 * MB, 32, 32),  # the cap
        (4000 * MB, 1000, 512),  # a cap that is no power of two: 997 images fit -> 512
        (10 * MB, 32, 1),  # not even 2 fit
    ],
)
def test_fitting_batch_is_the_largest_power_of_two_that_fits(free, cap, expected):
    forward, calls = _allocating(3 * MB, MB)
    assert memory.fitting_batch(forward, "cpu", cap=cap, fraction=0.25, free=free) == expected
    assert calls == [1, 2]  # measured at one and two images


def test_unknown_free_memory_gives_the_cap(monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: None)
    forward, _ = _allocating(0, MB)
    assert memory.fitting_batch(forward, "cpu", cap=8) == 8


def test_cpu_free_memory_is_the_smaller_of_available_and_the_cgroup_headroom(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 8 * 2**30)
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: 2**30)
    assert memory.free_bytes(torch.device("cpu")) == 2**30
    monkeypatch.setattr(memory, "_cgroup_headroom", lambda: None)
    assert memory.free_bytes(torch.device("cpu")) == 8 * 2**30


class _FakeCuda:
    """The caching allocator's statistics as torch.cuda reports them, driven by the probe's allocations."""

    def __init__(self, allocated: int, reserved: int, free: int, fixed: int, per_image: int):
        self.allocated, self.reserved, self.free = allocated, reserved, free
        self.fixed, self.per_image = fixed, per_image
        self.peak = allocated
        self.synced = 0

    def run(self, b: int) -> None:
        self.peak = max(self.peak, self.allocated + self.fixed + b * self.per_image)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: setattr(self, "synced", self.synced + 1))
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak)
        monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda device=None: setattr(self, "peak", self.allocated))
        monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: self.reserved)
        monkeypatch.setattr(cuda, "mem_get_info", lambda device=None: (self.free, 80 * 2**30))


def test_the_cuda_path_reads_the_caching_allocators_peak_and_free_memory(monkeypatch):
    fake = _FakeCuda(allocated=2 * 2**30, reserved=3 * 2**30, free=20 * 2**30, fixed=512 * MB, per_image=30 * MB)
    fake.install(monkeypatch)
    device = torch.device("cuda", 0)
    assert memory.free_bytes(device) == 21 * 2**30  # the driver's free memory and the allocator's cached block
    # 0.5 · 21 GiB = 10752 MB: (10752 − 512) / 30 = 341 images -> 256
    assert memory.fitting_batch(fake.run, device) == 256
    assert fake.synced == 4  # around each of the two measured passes
    fake.per_image = MB  # a small model: the GPU cap
    assert memory.fitting_batch(fake.run, device) == memory.AUTO_CAP["cuda"] == 1024


def test_an_automatic_size_is_measured_once_per_kind_only_when_a_chunk_needs_it(monkeypatch):
    measured: list[str] = []

    def fitting(forward: Any, device: Any) -> int:
        measured.append("x")
        return 8

    monkeypatch.setattr("xai.batching.fitting_batch", fitting)
    batches = Batches(None, "test", device="cpu")
    batches.fit((3, 32, 32), lambda b: None)
    assert measured == [] and batches.size == 0  # nothing has run yet
    spans: list[tuple[int, int]] = []
    batches.for_each(20, lambda a, b: spans.append((a, b)))
    assert spans == [(0, 8), (8, 16), (16, 20)] and measured == ["x"]
    batches.fit((3, 32, 32), lambda b: None)
    batches.for_each(3, lambda a, b: None)
    assert measured == ["x"]  # the same kind: measured once
    batches.fit((3, 64, 64), lambda b: None)
    batches.for_each(3, lambda a, b: None)
    assert measured == ["x", "x"]  # another input size is measured afresh


def test_an_automatic_size_halves_on_out_of_memory_and_keeps_the_halving_for_its_kind(monkeypatch, caplog):
    monkeypatch.setattr("xai.batching.fitting_batch", lambda forward, device: 16)
    batches = Batches(None, "test", device="cpu")
    batches.fit("small", lambda b: None)

    def chunk(a: int, b: int) -> None:
        if b - a > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with caplog.at_level(logging.WARNING, logger="xai.batching"):
        batches.for_each(32, chunk)  # 16 -> 8 -> 4
    assert batches.size == 4 and batches.fitted["small"] == 4
    assert sum("out of memory" in r.message for r in caplog.records) == 1
    batches.fit("large", lambda b: None)
    batches.for_each(1, lambda a, b: None)
    assert batches.fitted == {"small": 4, "large": 16}
    batches.fit("small", lambda b: None)
    assert batches.size == 4


def test_run_retries_a_library_call_at_half_the_size():
    batches = Batches(16, "captum", device="cpu")
    sizes: list[int] = []

    def call(size: int) -> int:
        sizes.append(size)
        if size > 2:
            raise RuntimeError("CUDA error: out of memory")
        return size * 10

    assert batches.run(call) == 20 and sizes == [16, 8, 4, 2]
    with pytest.raises(OutOfMemory):
        Batches(4, "captum", device="cpu").run(lambda size: (_ for _ in ()).throw(MemoryError()))


class _Bar:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.closed = 0

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed += 1


def test_a_sweeps_bar_counts_the_chunks_that_ran_and_is_closed_however_the_sweep_ends():
    bar = _Bar()

    def chunk(a: int, b: int) -> None:
        if b - a > 4:
            raise MemoryError("injected")

    Batches(8, "test", device="cpu").for_each(10, chunk, bar)
    assert bar.updates == [4, 4, 2] and bar.closed == 1  # the chunk of 8 that did not fit is not counted
    bar = _Bar()

    def fails_at_five(a: int, b: int) -> None:
        if b > 5:
            raise ValueError("injected")

    with pytest.raises(ValueError, match="injected"):
        Batches(2, "test", device="cpu").for_each(10, fails_at_five, bar)
    assert bar.updates == [2, 2] and bar.closed == 1
    bar = _Bar()
    with pytest.raises(OutOfMemory):  # not even one image fits
        Batches(1, "test", device="cpu").for_each(3, lambda a, b: (_ for _ in ()).throw(MemoryError()), bar)
    assert bar.updates == [] and bar.closed == 1
    Batches(4, "test", device="cpu").for_each(5, lambda a, b: None)  # no bar


@pytest.mark.parametrize("method", ["scorecam", "occlusion", "integrated_gradients", "kernel_shap"])
def test_engines_with_an_automatic_batch_give_the_maps_of_a_fixed_one(method):
    model = tiny_convnet(classes=3, seed=3)
    x = image_batch(1, 32, 32, seed=4)
    cls = get_method(method).cls
    options: dict[str, dict[str, Any]] = {
        "scorecam": {"target_layer": "features.1"},
        "occlusion": {},
        "integrated_gradients": {"steps": 6},
        "kernel_shap": {"n_samples": 12, "n_segments": 8},
    }
    small = options[method]
    fixed = cls(model, batch_size=3, **small)
    auto = cls(model, **small)
    assert auto.options.batch_size is None  # auto is the default
    expected, got = fixed(x, classes=[1, 2]), auto(x, classes=[1, 2])
    assert torch.allclose(got, expected, atol=1e-5)
    assert auto.last is not None
    size = auto.last.stats["batch_size"]
    assert size == auto.batches.size and 1 <= size <= memory.AUTO_CAP["cpu"] and size & (size - 1) == 0


def test_scorecam_measures_its_automatic_batch_once_per_input_size():
    counting = CountingModel(tiny_convnet(classes=3))
    cam = xai.ScoreCAM(counting, target_layer="inner.features.1", max_activation_maps=2, memory_format="contiguous")
    cam(image_batch(1, 16, 16), classes=[1])
    probes = counting.batches[2:4]
    assert probes == [1, 2]  # the input, the baseline, then the measurement at one and two images
    assert counting.batches[4:] == [2]  # and the 2 masked images in one chunk
    counting.batches.clear()
    cam(image_batch(1, 16, 16, seed=1), classes=[1])
    assert counting.batches == [1, 1, 2]  # measured once for this input size


def test_the_evaluation_measures_its_automatic_batch_once():
    counting = CountingModel(tiny_convnet(classes=3))
    x = image_batch(1, 16, 16)
    valid = torch.ones(16, 16, dtype=torch.bool)
    regions = torch.zeros(2, 16, 16, dtype=torch.bool)
    regions[0, :8], regions[1, 8:] = True, True
    maps = {"a": torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))}
    batches = Batches(None, "evaluation", device="cpu")
    faith = Faithfulness(counting, x, [1, 2], regions, valid, batches=batches)
    fixed = Faithfulness(tiny_convnet(classes=3), x, [1, 2], regions, valid, batch_size=7)
    got, expected = faith.deletion(maps, steps=10), fixed.deletion(maps, steps=10)
    assert [r.auc for r in got["a"]] == pytest.approx([r.auc for r in expected["a"]], abs=1e-6)
    assert counting.batches[:3] == [1, 2, 1]  # the measurement (1, 2 copies of x), then x itself
    assert batches.size >= 8 and max(counting.batches[3:]) <= batches.size


def test_measuring_draws_nothing_from_the_generators_a_method_seeded():
    """MC dropout measures its automatic batch inside its seeded block: the measuring passes must not use
    up dropout masks, or a sample's map would depend on being the first of its input size."""
    from tests.helpers import tiny_fpn

    model = tiny_fpn(seed=2)
    x = image_batch(1, 64, 64, seed=3)
    auto = xai.Uncertainty(model, batch_size=None, num_mc_samples=4)
    first, second = auto(x, classes=[1, 2]), auto(x, classes=[1, 2])
    fixed = xai.Uncertainty(model, batch_size=auto.batches.size, num_mc_samples=4)(x, classes=[1, 2])
    assert torch.equal(first, second) and torch.equal(first, fixed)
    assert xai.Uncertainty.Options().batch_size == 32  # its masks follow the batch: fixed by default, keyed
    assert "batch_size" in xai.Uncertainty.Options().result_key()


def test_out_of_memory_while_measuring_gives_one_image_per_pass(monkeypatch):
    def tight(b: int) -> None:
        if b > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    batches = Batches(None, "test", device="cpu")
    batches.fit("x", tight)
    spans: list[tuple[int, int]] = []
    batches.for_each(3, lambda a, b: spans.append((a, b)))
    assert spans == [(0, 1), (1, 2), (2, 3)] and batches.fitted == {"x": 1}


def test_methods_that_ignore_the_batch_size_neither_measure_nor_record_it():
    counting = CountingModel(tiny_convnet(classes=3))
    shap = get_method("gradient_shap").cls(counting, shap_samples=3)
    shap(image_batch(1, 16, 16), classes=[1])
    assert shap.last is not None and "batch_size" not in shap.last.stats
    assert counting.batches == [1, 3]  # the input, then captum's 3 draws: no measuring passes
    smooth = get_method("smoothgrad").cls(counting, nt_samples=4)
    assert smooth.uses_batches() and not shap.uses_batches()


def test_an_engine_on_a_model_copy_keeps_the_measured_sizes_and_is_not_compiled():
    import copy

    from xai.metrics.sanity import same_engine

    model = tiny_convnet(classes=3)
    cam = xai.ScoreCAM(model, target_layer="features.1", compile=False)
    cam.batches.fitted[("shape",)] = 8
    again = same_engine(cam, model, region="gt")
    assert again.batches.fitted == {("shape",): 8}
    compiled = xai.ScoreCAM(model, target_layer="features.1", compile=True)
    assert same_engine(compiled, model).options.compile
    assert not same_engine(compiled, copy.deepcopy(model)).options.compile
