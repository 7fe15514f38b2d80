"""The context-dependence matrix (xai.evaluation.context): on a hand-made model whose class i reads the
pixels of one region only, the matrix is known exactly; its forwards, an absent class, the report's
section and figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from xai.evaluation.context import (
    CONTEXT_IMPUTED,
    CONTEXT_MEAN_COLOUR,
    FAR,
    METHOD,
    NEAR,
    NEAR_WIDTH,
    context_masks,
    context_matrix,
)
from xai.evaluation.context_report import strong_dependences
from xai.evaluation.measures import Context, metrics
from xai.evaluation.report import write_report
from xai.evaluation.settings import EvaluationSettings
from xai.metrics.imputation import noisy_linear_impute
from xai.pipeline.records import SampleRecord

H, W = 32, 72
NAMES = ["background", "hypocotyl", "cotyledon", "root", "seed"]
# the layout the model predicts: the seedling at the left, the far background at the right
BOXES = {1: (4, 12, 4, 10), 2: (4, 12, 12, 18), 3: (16, 28, 4, 8), 4: (16, 20, 12, 15)}  # y0, y1, x0, x1
NEAR_BOX = (26, 30, 14, 20)  # background within 16 px of the seedling
FAR_BOX = (4, 28, 50, 70)  # background farther than 16 px
# class i reads the mean of channel 0 over one box, with weight w_i: DEPENDS[i] = (its box, the column, w_i)
DEPENDS = {0: (NEAR_BOX, NEAR, 1.0), 1: (BOXES[3], "root", -1.5), 2: (FAR_BOX, FAR, 1.2), 3: (BOXES[4], "seed", 0.8)}


def _box(box: tuple[int, int, int, int]) -> torch.Tensor:
    y0, y1, x0, x1 = box
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _layout(with_seed: bool = True) -> torch.Tensor:
    layout = torch.zeros(H, W, dtype=torch.long)
    for c, box in BOXES.items():
        if c != 4 or with_seed:
            layout[_box(box)] = c
    return layout


class Crafted(nn.Module):
    """P_c = sigmoid(4·[layout = c] − 2 + w_c · mean of x's channel 0 over box_c): class c's probability
    depends on box_c's pixels alone (|w_c · mean| < 2 keeps the layout the prediction)."""

    def __init__(self, layout: torch.Tensor):
        super().__init__()
        onehot = torch.stack([layout == c for c in range(len(NAMES))]).float()
        boxes = torch.zeros(len(NAMES), H, W)
        weights = torch.zeros(len(NAMES))
        for c, (box, _column, w) in DEPENDS.items():
            boxes[c] = _box(box).float() / _box(box).sum()
            weights[c] = w
        self.register_buffer("base", 4 * onehot - 2)
        self.register_buffer("boxes", boxes)
        self.register_buffer("weights", weights)
        self.act = nn.Sigmoid()

    base: torch.Tensor
    boxes: torch.Tensor
    weights: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = torch.einsum("bhw,chw->bc", x[:, 0], self.boxes)
        return self.act(self.base[None] + (self.weights * means)[:, :, None, None])


def _context(layout: torch.Tensor, noise: float = 0.0, batch_size: int = 64) -> Context:
    x = 0.1 + 0.2 * torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3))
    for box, _column, _w in DEPENDS.values():  # brighter than around: an imputation from around changes them
        x[:, :, _box(box)] += 0.5
    classes = list(range(len(NAMES)))
    valid = torch.ones(H, W, dtype=torch.bool)
    settings = EvaluationSettings(stability_samples=0, batch_size=batch_size, road_noise=noise)
    return Context(
        model=Crafted(layout),
        index=0,
        x=x,
        gt=None,
        valid=valid,
        classes=classes,
        regions=torch.stack([layout == c for c in classes]),
        maps={},
        settings=settings,
        prediction=layout,
        class_names=list(NAMES),
    )


def _rows(ctx: Context) -> dict[tuple[str, str, str], tuple[float | None, str | None]]:
    (declared,) = [m for m in metrics() if m.name == METHOD]
    names = ctx.class_names
    return {(names[j], label, measure): (v.value, v.reason) for label, j, measure, v in declared.compute(ctx)}


def _expected(ctx: Context, i: int, replaced: torch.Tensor, imputed: bool) -> float:
    """The formula: s_i = sigmoid(2 + w_i · m_i) on R_i, m_i the mean of channel 0 over box_i."""
    box, _column, w = DEPENDS[i]
    x = ctx.x
    if imputed:
        x2 = noisy_linear_impute(x, replaced[None], ctx.valid, noise=0.0)
    else:
        x2 = torch.where(replaced, torch.zeros_like(x), x)
    m, m2 = (float(t[0, 0][_box(box)].double().mean()) for t in (x, x2))
    s, s2 = (1 / (1 + math.exp(-(2 + w * v))) for v in (m, m2))
    return (s2 - s) / s


def test_the_masks_are_the_predicted_regions_and_the_band_around_the_seedling():
    layout = _layout()
    columns = context_masks(layout, torch.ones(H, W, dtype=torch.bool), [1, 4], ["hypocotyl", "seed"])
    assert columns.names == ["hypocotyl", "seed", NEAR, FAR] and columns.empty == [None] * 4
    assert torch.equal(columns.masks[0], layout == 1) and torch.equal(columns.masks[1], layout == 4)
    near, far = columns.masks[2], columns.masks[3]
    ys, xs = torch.nonzero(layout > 0, as_tuple=True)
    for y in range(H):  # near: background within w px (Chebyshev) of the foreground; far: the rest
        for x in range(W):
            d = int(torch.maximum((ys - y).abs(), (xs - x).abs()).min())
            assert bool(near[y, x]) == (0 < d <= NEAR_WIDTH) and bool(far[y, x]) == (d > NEAR_WIDTH)
    assert _box(NEAR_BOX).le(near).all() and _box(FAR_BOX).le(far).all()


@pytest.fixture(scope="module")
def measured() -> tuple[Context, dict]:
    ctx = _context(_layout())
    return ctx, _rows(ctx)


@pytest.mark.parametrize("imputed", [False, True])
def test_the_matrix_of_a_model_whose_classes_read_one_region_each_is_known_exactly(measured, imputed):
    ctx, rows = measured
    columns = context_masks(ctx.prediction, ctx.valid, ctx.classes, NAMES)
    measure = (CONTEXT_IMPUTED if imputed else CONTEXT_MEAN_COLOUR).name
    assert len(rows) == len(NAMES) * (len(NAMES) + 2) * 2
    touched = set()
    for i, name in enumerate(NAMES):
        for k, column in enumerate(columns.names):
            value, reason = rows[(name, column, measure)]
            assert value is not None, reason
            if i in DEPENDS and bool((columns.masks[k] & _box(DEPENDS[i][0])).any()):
                expected = _expected(ctx, i, columns.masks[k], imputed)
                assert abs(expected) > 0.005, (name, column, expected)  # the dependence is there to be found
                assert value == pytest.approx(expected, rel=1e-5, abs=1e-7), (name, column)
                touched.add((name, column))
            else:
                assert value == pytest.approx(0.0, abs=1e-6), (name, column, value)  # reads no other pixel
    # each class reads its box: the column that holds it (and the background class's, which holds the two
    # background columns)
    by_construction = {(NAMES[i], column) for i, (_box_, column, _w) in DEPENDS.items()}
    assert touched == by_construction | {("background", "background"), ("cotyledon", "background")}


def test_all_the_perturbed_images_run_in_one_counted_call(measured):
    ctx = measured[0]
    assert ctx.faith.forwards == {"unperturbed": 1, METHOD: 2 * (len(NAMES) + 2)}


def test_the_noisy_imputation_does_not_depend_on_the_batch_size():
    one, many = (_rows(_context(_layout(), noise=0.05, batch_size=b)) for b in (5, 64))  # 14 images: 3 batches
    assert one.keys() == many.keys()
    for key, (value, _reason) in one.items():
        assert value == pytest.approx(many[key][0], rel=1e-5, abs=1e-7), key


def test_a_class_without_pixels_gives_none_with_its_reason_and_costs_no_forward():
    ctx = _context(_layout(with_seed=False))
    rows = _rows(ctx)
    for column in [*NAMES, NEAR, FAR]:
        value, reason = rows[("seed", column, CONTEXT_MEAN_COLOUR.name)]
        assert value is None and reason == "class absent from its region"
    for name in NAMES[:4]:
        value, reason = rows[(name, "seed", CONTEXT_IMPUTED.name)]
        assert value is None and reason == "the replaced region is empty: no pixel predicted as seed"
        assert rows[(name, "root", CONTEXT_IMPUTED.name)][0] is not None
    assert ctx.faith.forwards[METHOD] == 2 * (len(NAMES) - 1 + 2)


def _record(i: int, rows: list[dict]) -> SampleRecord:
    return SampleRecord(id=f"sample{i}", index=i, name=f"img{i}.png", status="done", run_key={}, run={}, metrics=rows)


def _matrix_rows(i: int, rng: np.random.Generator) -> list[dict]:
    """A map's row, and the matrix rows of two classes: root falls ~40% without the seed."""
    rows = [{"class": "root", "method": "gradcam", "variant": "gradcam", "metric": "deletion_auc_linear", "value": 0.3}]
    for cls in ("root", "seed"):
        for region in ("root", "seed", NEAR, FAR):
            for measure in (CONTEXT_MEAN_COLOUR, CONTEXT_IMPUTED):
                mean = -0.4 if (cls, region) == ("root", "seed") else -0.9 if cls == region else 0.0
                value = mean + 0.02 * rng.standard_normal()
                rows.append({"class": cls, "method": METHOD, "variant": region, "metric": measure.name, "value": value})
    return rows


def test_the_report_shows_the_matrix_with_its_strong_dependences_and_the_figure(tmp_path):
    rng = np.random.default_rng(0)
    records = [_record(i, _matrix_rows(i, rng)) for i in range(6)]
    write_report(tmp_path, records, {"model": "m.pth", "split": "test"})
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "## Context dependence" in md and "Context dependence</h2>" in html
    assert "| class i \\ region k | root | seed | background_near | background_far |" in md
    assert "root's score falls 40% [" in md and "when the seed is set to the mean colour (n=6)." in md
    assert "when the seed is imputed (ROAD) (n=6)." in md
    assert md.count("'s score falls") == 2  # the diagonal is not a dependence on context; the zeros are none
    png = tmp_path / "report" / "context_dependence.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert "report/context_dependence.png" in md
    assert "Class seed" not in md and "background_near" not in md.split("## Context dependence")[0]  # apart
    import json

    document = json.loads((tmp_path / "metrics.json").read_text())
    cell = document["context"]["mean colour"]["root"]["seed"]
    assert cell["n"] == 6 and cell["ci_low"] < -0.35 < cell["mean"] + 0.05 and cell["ci_high"] < 0
    assert list(document["variants"]) == ["gradcam"]  # the matrix's regions are no variants of the tables


def test_few_samples_call_no_dependence():
    rng = np.random.default_rng(1)
    rows = [row for i in range(3) for row in _matrix_rows(i, rng)]
    matrix = context_matrix(rows)["mean colour"]
    assert matrix["root"]["seed"].n == 3 and strong_dependences(matrix, "mean colour") == []
