"""Deletion, insertion, ROAD and Average Drop/Increase: known answers, endpoints, padding, batching,
forward counts, and agreement with the loop references of tests/metric_reference.py."""

from __future__ import annotations

import math

import pytest
import torch

from tests import metric_reference as ref
from tests.helpers import CountingModel, tiny_convnet
from tests.metric_reference import one_thread  # noqa: F401 (autouse fixture)
from xai.errors import XAIError
from xai.metrics import faithfulness as fm
from xai.metrics.faithfulness import ABSENT, Faithfulness, gaussian_blur

H, W = 32, 64
PATCH = (8, 16, 8, 16)  # rows 8..15, columns 8..15


def _patch_case() -> tuple[ref.PatchModel, torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """PatchModel, x (patch bright), valid (columns 56.. are padding), maps on / off the patch, and the
    regions [class 0: everything, class 1: rows 0..3 (small: the area schedule differs from linear)]."""
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(1, 3, H, W, generator=g)
    x[:, :, 8:16, 8:16] += 1.5
    x[:, :, :, 56:] = 2.0
    valid = torch.ones(H, W, dtype=torch.bool)
    valid[:, 56:] = False
    on, off = torch.zeros(2, H, W), torch.zeros(2, H, W)
    on[:, 8:16, 8:16] = 1.0
    off[:, 20:28, 40:48] = 1.0
    regions = torch.zeros(2, H, W, dtype=torch.bool)
    regions[0] = True
    regions[1, :4] = True
    return ref.PatchModel(PATCH), x, valid, {"on": on, "off": off}, regions


@pytest.mark.parametrize("schedule", ["linear", "area"])
def test_a_map_on_the_patch_beats_a_map_elsewhere(schedule):
    model, x, valid, maps, regions = _patch_case()
    faith = Faithfulness(model, x, [0, 1], regions, valid)
    dele = faith.deletion(maps, steps=20, schedule=schedule)
    ins = faith.insertion(maps, steps=20, schedule=schedule)
    assert dele["on"][1].auc < dele["off"][1].auc - 0.2
    assert ins["on"][1].auc > ins["off"][1].auc + 0.1
    assert dele["on"][1].schedule == schedule
    n = dele["on"][1].pixels
    assert n is not None
    total = 1792 if schedule == "linear" else 2 * 4 * 56  # |V|, or 2|R_1|
    assert int(n[0]) == 0 and int(n[-1]) == total and int(n[10]) == total // 2


def test_road_removing_the_patch_first_hurts_more_than_removing_it_last():
    model, x, valid, maps, regions = _patch_case()
    road = Faithfulness(model, x, [0, 1], regions, valid).road(maps)
    on = road["on"][1]
    assert on.morf < on.lerf - 0.2 and on.gap > 0.2
    assert on.morf_curve is not None and on.lerf_curve is not None
    assert math.isclose(on.gap, float((on.lerf_curve - on.morf_curve).mean()), abs_tol=1e-12)
    assert on.percentiles == tuple(range(10, 100, 10)) and on.morf_curve.shape == (9,)
    assert road["off"][1].gap < on.gap
    flat = Faithfulness(model, x, [0, 1], regions, valid).road({"flat": torch.full((2, H, W), 0.5)})["flat"][1]
    assert flat.morf_curve is not None and flat.lerf_curve is not None
    assert flat.gap == 0.0 and torch.equal(flat.morf_curve, flat.lerf_curve)  # same pixels, same noise


def test_curve_endpoints_are_x_the_all_mean_image_and_the_blurred_image():
    model, x, valid, maps, regions = _patch_case()
    rec = ref.RecordingModel(model)
    faith = Faithfulness(rec, x, [0, 1], regions, valid, batch_size=8)
    dele_curve, ins_curve = (
        faith.deletion(maps, steps=10)["on"][1].curve,
        faith.insertion(maps, steps=10)["on"][1].curve,
    )
    assert dele_curve is not None and ins_curve is not None
    dele, ins = dele_curve[1], ins_curve[1]
    deleted = torch.where(valid, torch.zeros_like(x), x)[0]
    blurred = ref.blur(x[0], valid=valid).float()
    s = lambda image: ref.score(model, image, 1, regions[1])  # noqa: E731
    assert math.isclose(float(dele[0]), s(x[0]), abs_tol=1e-6)
    assert math.isclose(float(dele[-1]), s(deleted), abs_tol=1e-6)
    assert math.isclose(float(ins[0]), s(blurred), abs_tol=1e-5)
    assert math.isclose(float(ins[-1]), s(x[0]), abs_tol=1e-6)
    assert any(torch.equal(batch[0], deleted) for batch in rec.inputs if batch.shape[0] == 1)


def test_insertion_start_is_blurred_over_the_photograph_only():
    """Padding values neither enter the blur of V nor change: the start image on V is the same whatever
    the padding holds, and equals the plain blur where the window lies inside V."""
    model, x, valid, _, regions = _patch_case()
    other = x.clone()
    other[:, :, :, 56:] = -7.0
    a = Faithfulness(model, x, [0, 1], regions, valid).shared_image("blurred")[0]
    b = Faithfulness(model, other, [0, 1], regions, valid).shared_image("blurred")[0]
    assert torch.allclose(a[:, valid], b[:, valid], atol=1e-6)
    assert torch.equal(b[:, ~valid], other[0][:, ~valid])
    plain = gaussian_blur(x)[0]
    assert torch.allclose(a[:, :, :40], plain[:, :, :40], atol=1e-6)  # 40 + 5 < 56: the window never reaches padding
    assert not torch.allclose(a[:, :, 50:56], plain[:, :, 50:56], atol=1e-3)


def test_padding_is_never_perturbed():
    model, x, valid, maps, regions = _patch_case()
    rec = ref.RecordingModel(model)
    faith = Faithfulness(rec, x, [0, 1], regions, valid, batch_size=16)
    for schedule in ("linear", "area"):
        faith.deletion(maps, steps=10, schedule=schedule)
        faith.insertion(maps, steps=10, schedule=schedule)
    faith.road(maps, percentiles=(30, 60, 90))
    faith.average_drop_increase(maps)
    images = torch.cat(rec.inputs)
    assert images.shape[0] == sum(faith.forwards.values()) > 90  # its two classes share a map: shared images
    assert torch.equal(images[:, :, ~valid], x[:, :, ~valid].expand(images.shape[0], -1, -1))
    assert bool((images[:, :, valid] != x[:, :, valid]).any())


def _small_case(seed: int = 0):
    """tiny_convnet (3 classes) on 12×16 with 3 padding columns (|V| = 156); regions: class 0 the 84
    pixels left of column 7 (2|R| ≥ |V|), class 1 36 pixels (2|R| < |V|), class 2 absent; maps with
    ties (4 levels) so the stable order matters."""
    model = tiny_convnet(classes=3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, 12, 16, generator=g)
    valid = torch.ones(12, 16, dtype=torch.bool)
    valid[:, 13:] = False
    cols, rows = torch.arange(16).view(1, 16), torch.arange(12).view(12, 1)
    regions = torch.stack([valid & (cols < 7), valid & (cols >= 7) & (rows < 6), torch.zeros_like(valid)])
    maps = {"a": (torch.rand(3, 12, 16, generator=g) * 4).floor() / 3, "b": torch.rand(3, 12, 16, generator=g)}
    return model, x, valid, regions, maps


def test_everything_matches_the_loop_references():
    model, x, valid, regions, maps = _small_case()
    faith = Faithfulness(model, x, [0, 1, 2], regions, valid)
    for kind in ("deletion", "insertion"):
        for schedule in ("linear", "area"):
            got = getattr(faith, kind)(maps, steps=8, schedule=schedule)
            for name, m in maps.items():
                for j in (0, 1):
                    ys = ref.curve(model, x[0], m[j], j, regions[j], valid, kind, 8, schedule)
                    assert torch.allclose(got[name][j].curve[1], torch.tensor(ys, dtype=torch.float64), atol=1e-5)
                    assert math.isclose(got[name][j].auc, ref.trapezoid(ys), abs_tol=1e-5)
    road = faith.road(maps, percentiles=(20, 50, 80), noise=0.0)
    adi = faith.average_drop_increase(maps)
    for name, m in maps.items():
        for j in (0, 1):
            morf, lerf = ref.road(model, x[0], m[j], j, regions[j], valid, percentiles=(20, 50, 80))
            got_morf, got_lerf = road[name][j].morf_curve, road[name][j].lerf_curve
            assert got_morf is not None and got_lerf is not None
            assert torch.allclose(got_morf, torch.tensor(morf, dtype=torch.float64), atol=1e-4)
            assert torch.allclose(got_lerf, torch.tensor(lerf, dtype=torch.float64), atol=1e-4)
            drop, increase = ref.drop_increase(model, x[0], m[j], j, regions[j], valid)
            assert math.isclose(adi[name][j].drop, drop, abs_tol=1e-3) and adi[name][j].increase == increase


def _all_numbers(faith: Faithfulness, maps) -> torch.Tensor:
    """Every AUC, curve point, ROAD score and Average Drop/Increase of classes 0 and 1."""
    values = []
    for kind in ("deletion", "insertion"):
        for schedule in ("linear", "area"):
            for per_class in getattr(faith, kind)(maps, steps=12, schedule=schedule).values():
                values += [torch.cat([r.curve[1], torch.tensor([r.auc])]) for r in per_class[:2]]
    for per_class in faith.road(maps, percentiles=(25, 75)).values():
        for r in per_class[:2]:
            assert r.morf_curve is not None and r.lerf_curve is not None
            values.append(torch.cat([r.morf_curve, r.lerf_curve]))
    for per_class in faith.average_drop_increase(maps).values():
        values += [torch.tensor([r.drop, r.increase, r.o]) for r in per_class[:2]]
    return torch.cat(values)


def test_every_number_is_independent_of_the_batch_size():
    model, x, valid, regions, maps = _small_case(seed=1)
    numbers = [
        _all_numbers(Faithfulness(model, x, [0, 1, 2], regions, valid, batch_size=bs), maps) for bs in (1, 7, 64)
    ]
    assert numbers[0].numel() > 100
    assert (numbers[0] - numbers[1]).abs().max() <= 1e-5
    assert (numbers[0] - numbers[2]).abs().max() <= 1e-5


def test_an_empty_region_gives_nan_with_a_reason_and_costs_no_forward():
    model, x, valid, regions, maps = _small_case()
    faith = Faithfulness(model, x, [0, 1, 2], regions, valid)
    results = [faith.deletion(maps, steps=5)["a"][2], faith.insertion(maps, steps=5, schedule="area")["a"][2]]
    assert all(math.isnan(r.auc) and r.curve is None and r.reason == ABSENT for r in results)
    road = faith.road(maps)["b"][2]
    assert math.isnan(road.gap) and math.isnan(road.morf) and road.reason == ABSENT
    adi = faith.average_drop_increase(maps)["b"][2]
    assert math.isnan(adi.drop) and math.isnan(adi.increase) and adi.reason == ABSENT
    assert faith.forwards["deletion_linear"] == 4 * 2 * 2  # S−1 per map and present class
    assert faith.forwards["road"] == 18 * 2 * 2 and faith.forwards["average_drop_increase"] == 2 * 2


def test_forward_counts_follow_the_documented_formula():
    model, x, valid, regions, maps = _small_case()
    counting = CountingModel(model)
    faith = Faithfulness(counting, x, [0, 1, 2], regions, valid, batch_size=10)
    faith.deletion(maps, steps=10)
    faith.insertion(maps, steps=10)
    faith.deletion(maps, steps=10, schedule="area")
    n_valid = int(valid.sum())  # 156; class 0: 2|R| = 168 ≥ |V|, its area points are the linear ones
    linear = {ref.round_half_up(i * n_valid / 10) for i in range(11)}
    area_1 = {ref.round_half_up(i * 2 * int(regions[1].sum()) / 10) for i in range(11)}
    assert faith.forwards == {
        "unperturbed": 1,
        "shared": 2,
        "deletion_linear": 9 * 2 * 2,
        "insertion_linear": 9 * 2 * 2,
        "deletion_area": len(area_1 - linear - {0}) * 2,
    }
    assert sum(counting.batches) == sum(faith.forwards.values()) and max(counting.batches) == 10
    before = dict(faith.forwards)
    again = faith.deletion(maps, steps=10, schedule="area")  # nothing new to run
    assert faith.forwards == before
    assert again["a"][1].auc == faith.deletion({"a": maps["a"]}, steps=10, schedule="area")["a"][1].auc
    changed = {"a": maps["a"].flip(-1)}  # the same name with other values is measured afresh
    faith.deletion(changed, steps=10)
    assert faith.forwards["deletion_linear"] == before["deletion_linear"] + 9 * 2


def test_average_drop_and_increase_by_hand():
    model, x, valid, _, _ = _patch_case()
    x = torch.zeros(1, 3, H, W)
    x[:, :, 8:16, 8:16] = 1.0
    regions = torch.ones(2, H, W, dtype=torch.bool)
    cam = torch.zeros(2, H, W)
    cam[:, 8:16, 8:16] = 0.5
    cam[:, 0, 0] = 1.0  # max 1 and min 0 over V: min-max leaves the map as it is
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731  P_1 = softmax([0, l])_1 = σ(l), l = 4·mean − 3
    y, o = sigmoid(4 * 1.0 - 3), sigmoid(4 * 0.5 - 3)
    res = Faithfulness(model, x, [0, 1], regions, valid).average_drop_increase({"m": cam})["m"][1]
    assert math.isclose(res.y, y, rel_tol=1e-6) and math.isclose(res.o, o, rel_tol=1e-6)
    assert math.isclose(res.drop, (y - o) / y * 100, rel_tol=1e-5) and res.increase == 0.0
    x = -x  # now the patch lowers class 1: scaling it towards 0 raises the score
    res = Faithfulness(model, x, [0, 1], regions, valid).average_drop_increase({"m": cam})["m"][1]
    assert res.o > res.y and res.drop == 0.0 and res.increase == 100.0
    assert math.isclose(res.o, sigmoid(-4 * 0.5 - 3), rel_tol=1e-6)


def test_a_constant_map_scores_the_all_deleted_image_without_a_forward():
    model, x, valid, regions, _ = _small_case()
    faith = Faithfulness(model, x, [0, 1, 2], regions, valid)
    res = faith.average_drop_increase({"flat": torch.full((3, 12, 16), 0.3)})["flat"][0]
    assert "average_drop_increase" not in faith.forwards or faith.forwards["average_drop_increase"] == 0
    deleted = torch.where(valid, torch.zeros_like(x), x)[0]
    assert math.isclose(res.o, ref.score(model, deleted, 0, regions[0]), abs_tol=1e-6)


def test_the_model_runs_in_eval_mode_and_gets_its_flags_back():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5), torch.nn.Conv2d(4, 2, 1)
    )
    x = torch.randn(1, 3, 12, 16)
    regions = torch.ones(2, 12, 16, dtype=torch.bool)
    valid = torch.ones(12, 16, dtype=torch.bool)
    maps = {"m": torch.rand(2, 12, 16, generator=torch.Generator().manual_seed(0))}
    model.eval()
    expected = Faithfulness(model, x, [0, 1], regions, valid).deletion(maps, steps=5)["m"][1].auc
    model.train()
    got = Faithfulness(model, x, [0, 1], regions, valid).deletion(maps, steps=5)["m"][1].auc
    assert got == expected and all(m.training for m in model.modules())


def test_module_functions_equal_the_object_and_bad_arguments_are_refused():
    model, x, valid, regions, maps = _small_case()
    faith = Faithfulness(model, x, [0, 1, 2], regions, valid)
    assert (
        fm.deletion(model, x, maps, [0, 1, 2], regions, valid, steps=6)["b"][1].auc
        == faith.deletion(maps, steps=6)["b"][1].auc
    )
    assert (
        fm.average_drop_increase(model, x, maps, [0, 1, 2], regions, valid)["a"][0].drop
        == faith.average_drop_increase(maps)["a"][0].drop
    )
    with pytest.raises(XAIError, match="schedule"):
        faith.deletion(maps, schedule="log")
    with pytest.raises(XAIError, match="percentiles"):
        faith.road(maps, percentiles=(0, 50))
    with pytest.raises(XAIError, match="do not match"):
        faith.insertion({"bad": torch.zeros(2, 12, 16)})
    with pytest.raises(XAIError, match="out of range"):
        Faithfulness(model, x, [0, 5], regions[:2], valid)
    with pytest.raises(XAIError, match="no pixel"):
        Faithfulness(model, x, [0, 1, 2], regions, torch.zeros(12, 16, dtype=torch.bool))


class _OutOfMemoryAbove(torch.nn.Module):
    """The model, but a batch larger than `limit` raises MemoryError (the CPU's out-of-memory error)."""

    def __init__(self, model: torch.nn.Module, limit: int):
        super().__init__()
        self.model, self.limit, self.refused = model, limit, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            self.refused += 1
            raise MemoryError("injected")
        return self.model(x)


def test_out_of_memory_halves_the_batch_and_changes_no_number(caplog):
    model, x, valid, maps, regions = _patch_case()
    expected = _all_numbers(Faithfulness(model, x, [0, 1], regions, valid, batch_size=16), maps)
    tight = _OutOfMemoryAbove(model, limit=3)
    faith = Faithfulness(tight, x, [0, 1], regions, valid, batch_size=16)
    with caplog.at_level("WARNING", logger="xai.batching"):
        got = _all_numbers(faith, maps)
    assert faith.batch_size == 2 and tight.refused == 3  # 16 -> 8 -> 4 -> 2, then it fits
    assert sum("out of memory" in r.message for r in caplog.records) == 1  # said once
    assert got.shape == expected.shape and torch.allclose(
        got, expected, rtol=0, atol=1e-6, equal_nan=True
    )  # fp32 convolutions may sum in another order at another batch size
    with pytest.raises(XAIError, match=r"out of memory in evaluation on cpu even with 1 image\(s\)"):
        Faithfulness(_OutOfMemoryAbove(model, limit=0), x, [0, 1], regions, valid, batch_size=4)


def test_road_with_noise_is_pinned_and_the_same_with_or_without_host_looks():
    """The MoRF and LeRF curves (25th, 75th percentile) of classes 0 and 1 with seeded noise: the numbers
    this implementation gives, by the checking and by the sync-free imputations."""
    model, x, valid, regions, maps = _small_case()
    expected = {
        "a": [[0.439818, 0.444008, 0.428574, 0.412723], [0.245735, 0.25079, 0.245746, 0.247407]],
        "b": [[0.432256, 0.443357, 0.427081, 0.420373], [0.244652, 0.250982, 0.246784, 0.25129]],
    }
    for sync_free in (False, True):
        faith = Faithfulness(model, x, [0, 1, 2], regions, valid, batch_size=5, sync_free=sync_free)
        road = faith.road(maps, percentiles=(25, 75), noise=0.05, seed=3)
        assert faith.forwards == {"unperturbed": 1, "road": 2 * 2 * 2 * 2}
        for name, rows in expected.items():
            assert road[name][2].reason == ABSENT and road[name][2].percentiles == (25, 75)
            for j, row in enumerate(rows):
                r = road[name][j]
                assert r.morf_curve is not None and r.lerf_curve is not None and r.reason is None
                got = torch.cat([r.morf_curve, r.lerf_curve])
                assert torch.allclose(got, torch.tensor(row, dtype=torch.float64), atol=1e-5, rtol=0), got.tolist()
                assert (r.morf, r.lerf) == (float(r.morf_curve.mean()), float(r.lerf_curve.mean()))
                assert r.gap == float((r.lerf_curve - r.morf_curve).mean())


def test_every_refusal_says_what_is_wrong_word_for_word():
    model, x, valid, regions, maps = _small_case()
    faith = Faithfulness(model, x, [0, 1, 2], regions, valid)
    refusals = {
        "batch_size must be at least 1, got 0": lambda: Faithfulness(model, x, [0], regions[:1], valid, batch_size=0),
        "faithfulness metrics take one image (1×C×H×W), got shape (2, 3, 12, 16)": lambda: Faithfulness(
            model, x.expand(2, -1, -1, -1), [0], regions[:1], valid
        ),
        "the input holds NaN or infinite values": lambda: Faithfulness(model, x / 0, [0], regions[:1], valid),
        "valid mask of shape (12, 15) does not match the image's (12, 16)": lambda: Faithfulness(
            model, x, [0], regions[:1], valid[:, :15]
        ),
        "faithfulness metrics need at least one class": lambda: Faithfulness(model, x, [], regions[:0], valid),
        "regions of shape (2, 12, 16) do not match 3 classes of (12, 16) pixels": lambda: Faithfulness(
            model, x, [0, 1, 2], regions[:2], valid
        ),
        "the valid mask holds no pixel of the photograph": lambda: Faithfulness(
            model, x, [0, 1, 2], regions, torch.zeros_like(valid)
        ),
        "ROAD percentiles must lie strictly between 0 and 100, got [50, 100]": lambda: faith.road(
            maps, percentiles=(50, 100)
        ),
        "ROAD percentiles must lie strictly between 0 and 100, got []": lambda: faith.road(maps, percentiles=()),
        "ROAD needs noise ≥ 0 and seed ≥ 0, got -0.1 and 0": lambda: faith.road(maps, noise=-0.1),
        "ROAD needs noise ≥ 0 and seed ≥ 0, got 0.01 and -1": lambda: faith.road(maps, seed=-1),
    }
    for message, call in refusals.items():
        with pytest.raises(XAIError) as err:
            call()
        assert str(err.value) == message


def test_equal_maps_share_their_perturbed_images_and_each_class_keeps_its_numbers():
    """A class-agnostic map (one map for every class, Eigen-CAM's) and an equal map under another name
    perturb the image identically: one forward per step serves them all, and every class's curve is
    still the loop reference's."""
    model, x, valid, regions, maps = _small_case()
    one = maps["a"][:1].expand(3, -1, -1).clone()
    counting = CountingModel(model)
    faith = Faithfulness(counting, x, [0, 1, 2], regions, valid, batch_size=10)
    both = {"agnostic": one, "twin": one.clone()}
    deletion, insertion = faith.deletion(both, steps=10), faith.insertion(both, steps=10)
    drop = faith.average_drop_increase(both)
    assert faith.forwards == {
        "unperturbed": 1,
        "shared": 2,
        "deletion_linear": 9,
        "insertion_linear": 9,
        "average_drop_increase": 1,
    }
    assert sum(counting.batches) == sum(faith.forwards.values())
    for name in both:
        for j in (0, 1):  # class 2 is absent
            for kind, result in (("deletion", deletion), ("insertion", insertion)):
                expected = ref.curve(model, x[0], one[j], j, regions[j], valid, kind, 10, "linear")
                assert math.isclose(result[name][j].auc, ref.trapezoid(expected), abs_tol=1e-5)
            drop_j, increase_j = ref.drop_increase(model, x[0], one[j], j, regions[j], valid)
            assert math.isclose(drop[name][j].drop, drop_j, abs_tol=1e-3) and drop[name][j].increase == increase_j


def test_maps_that_only_share_a_projection_are_not_taken_as_equal():
    """The sharing is exact: maps are compared pixel for pixel after their projections agree."""
    model, x, valid, regions, _ = _small_case()
    faith = Faithfulness(model, x, [0, 1, 2], regions, valid, batch_size=10)
    a = torch.zeros(3, 12, 16)
    a[:, 0, 0] = 1.0
    b = a.clone()
    b[1] = 0.0
    b[1, 0, 1] = 1.0  # another pixel: another order, another image
    faith._projection = torch.ones(12, 16, dtype=torch.float64)  # every one-pixel map projects to 1
    faith.deletion({"a": a, "b": b}, steps=10)
    assert faith._twins[("b", 1)] == ("b", 1) and faith._twins[("b", 0)] == ("a", 0)
    assert faith.forwards["deletion_linear"] == 9 * 2
