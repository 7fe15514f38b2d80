"""One registry of metrics (xai.metrics.registry): summary.csv's columns and --evaluate's measures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xai.evaluation.measures import Context
from xai.labels import IGNORE
from xai.metrics import registry
from xai.metrics.registry import SUMMARY, Measure, Value, measures, metric, metrics, summary_columns
from xai.metrics.segmentation import ERROR_AUROC, energy_in, error_auroc, error_counts, iou_dice, uncertainty_metrics

METRICS_CSV = [  # metrics.csv's measures, in the order of its rows and of the report's columns
    *("deletion_auc_linear", "deletion_auc_area", "insertion_auc_linear", "insertion_auc_area"),
    *("road_morf", "road_lerf", "road_gap", "average_drop", "average_increase"),
    *("energy_pointing_game", "pointing_game", "rank_accuracy", "seconds", "pearson_vs_full", "error_auroc"),
    *("complexity", "sparseness", "ring_ratio", "ring_share", "energy_outside", "context_deletion_auc"),
    *(f"energy_pointing_game_{s}" for s in ("small", "medium", "large")),
    *(f"rank_accuracy_{s}" for s in ("small", "medium", "large")),
    *("max_sensitivity", "noise_spearman", "instance_share"),
    *("faithfulness_correlation", "irof", "random_logit", "local_lipschitz"),
    *("context_mean_colour", "context_imputed"),  # the model's context-dependence matrix (xai.evaluation.context)
]


def _sample(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, (12, 16)).astype(np.uint8)
    gt[0, :4] = IGNORE
    pred = np.where(rng.random(gt.shape) < 0.7, gt % 3, rng.integers(0, 3, gt.shape)).astype(np.uint8)
    return gt, pred, rng.random(gt.shape), rng.random(gt.shape)


def test_the_summary_columns_come_from_the_one_registry():
    summary = ["iou", "dice", "tp", "fp", "fn", "energy_in_gt", "energy_in_pred", "error_auroc"]
    assert [m.name for m in measures(SUMMARY)] == summary
    gt, pred, cam, u = _sample()
    maps = {"gradcam": cam, "uncertainty": u, "scorecam": None}
    families = {"gradcam": "cam", "uncertainty": "uncertainty", "scorecam": "cam"}
    after = {m: {"seconds": 0.5} for m in maps}
    row = summary_columns(gt, pred, 1, maps, families, after=after)

    class_columns = [m.name for mt in metrics("class") for m in mt.measures]
    assert class_columns == ["iou", "dice", "tp", "fp", "fn"]
    per_method = {
        method: [f"{method}_{m.name}" for mt in metrics("map") if mt.applies_to(families[method]) for m in mt.measures]
        + [f"{method}_seconds"]
        for method in maps
    }
    assert per_method["uncertainty"][-2:] == ["uncertainty_error_auroc", "uncertainty_seconds"]
    assert list(row) == class_columns + [c for method in maps for c in per_method[method]]

    counts = error_counts(gt, pred, 1)
    assert (row["iou"], row["dice"]) == iou_dice(counts)
    assert [row[k] for k in ("tp", "fp", "fn")] == [counts[k] for k in ("tp", "fp", "fn")]
    assert all(type(row[k]) is int for k in ("tp", "fp", "fn"))
    assert row["gradcam_energy_in_gt"] == energy_in(cam, gt == 1)
    assert row["gradcam_energy_in_pred"] == energy_in(cam, pred == 1)
    assert row["uncertainty_error_auroc"] == error_auroc(u, gt, pred, 1)
    assert row["scorecam_energy_in_gt"] is None and row["scorecam_energy_in_pred"] is None  # no map
    assert "gradcam_error_auroc" not in row  # the uncertainty family's column only


def test_the_maps_columns_use_the_maps_own_ground_truth_and_prediction():
    gt, pred, _, _ = _sample()
    small_gt, small_pred, small_cam, _ = _sample(seed=1)
    row = summary_columns(gt, pred, 2, {"m": small_cam}, {"m": "cam"}, maps_gt_pred=(small_gt, small_pred))
    assert row["iou"] == iou_dice(error_counts(gt, pred, 2))[0]  # the prediction's quality: the photograph
    assert row["m_energy_in_gt"] == energy_in(small_cam, small_gt == 2)  # the map's: its own copy


def test_error_auroc_is_declared_once_and_is_a_summary_column_and_an_evaluated_measure():
    declared = [m for mt in metrics() for m in mt.measures if m.name == "error_auroc"]
    assert declared == [ERROR_AUROC] and ERROR_AUROC.tables == (SUMMARY, "main")
    assert ERROR_AUROC in measures(SUMMARY) and ERROR_AUROC in measures("main")
    names = [m.name for mt in metrics() for m in mt.measures]
    assert len(names) == len(set(names))  # every measure's name once in the registry
    assert [m.name for m in measures(None)] == METRICS_CSV  # metrics.csv's measures, in their order
    assert {m.name for m in measures(SUMMARY)} & set(METRICS_CSV) == {"error_auroc"}  # the one in both


def test_the_evaluation_measures_error_auroc_with_the_summary_metric_on_the_photograph():
    gt, pred, _, u = _sample()
    valid = np.ones(gt.shape, bool)
    valid[:, -3:] = False  # padding
    ctx = Context(
        model=torch.nn.Identity(),
        index=0,
        x=torch.zeros(1, 3, *gt.shape),
        gt=torch.from_numpy(gt.astype(np.int64)),
        valid=torch.from_numpy(valid),
        classes=[1, 2],
        regions=torch.zeros(2, *gt.shape, dtype=torch.bool),
        maps={"mc": torch.from_numpy(np.stack([u, u[::-1]])).float(), "gradcam": torch.rand(2, *gt.shape)},
        settings=None,
        prediction=torch.from_numpy(pred.astype(np.int64)),
        families={"mc": "uncertainty", "gradcam": "cam"},
    )
    (declared,) = [mt for mt in metrics() if mt.fn is uncertainty_metrics]
    rows = list(declared.compute(ctx))
    assert [(label, j, name) for label, j, name, _ in rows] == [("mc", 0, "error_auroc"), ("mc", 1, "error_auroc")]
    on_photo = np.where(valid, gt, IGNORE), np.where(valid, pred, IGNORE)
    for (_, j, _, value), c in zip(rows, [1, 2], strict=True):
        assert value.value == error_auroc(ctx.maps["mc"][j].numpy(), *on_photo, c)


def test_a_metric_yields_and_returns_the_measure_objects_it_declares(monkeypatch):
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))
    wanted = Measure("wanted", "Wanted", "higher")

    @metric(wanted)
    def by_name(ctx):
        yield "m", 0, "wanted", Value(1.0)  # the name instead of the Measure

    (declared,) = [mt for mt in metrics() if mt.name == "by_name"]
    with pytest.raises(ValueError, match="not one of the Measure objects it declares"):
        list(declared.compute(None))

    peak = Measure("peak", "Peak", None, table=SUMMARY)

    @metric(peak, per="map")
    def forgetful(cam, gt, pred, class_idx):
        return {}

    gt, pred, cam, _ = _sample()
    with pytest.raises(ValueError, match="not the measures it declares"):
        summary_columns(gt, pred, 1, {"m": cam}, {"m": "cam"})
    with pytest.raises(ValueError, match="already declared"):
        metric(Measure("error_auroc", "Again", "higher"))(lambda ctx: iter(()))
    with pytest.raises(ValueError, match="per class"):
        metric(Measure("share", "Share", "higher"), per="class")(lambda gt, pred, c: {})
