"""Layout: the relative path of every file of a sample, per explained class and method."""

from __future__ import annotations

from pathlib import Path

from xai.pipeline.layout import Layout, sample_id
from xai.pipeline.outputs import output_kinds

CLASSES = ("background", "root", "hypocotyl", "cotyledon", "seed")
METHODS = (("scorecam", "Score-CAM", "scorecam_maps"), ("gradcam", "Grad-CAM", "gradcam_maps"))


def _layout(class_ids=(1, 4), methods=METHODS, comparison=True):
    return Layout(
        out=Path("runs/a"),
        class_names=CLASSES,
        class_ids=tuple(class_ids),
        kinds=tuple(output_kinds(methods, comparison)),
    )


def test_sample_id():
    assert sample_id(0) == "sample0" and sample_id(12) == "sample12"


def test_figures_per_kind_and_explained_class():
    files = _layout().sample(7)
    assert list(files.figures) == ["tpfpfn", "scorecam", "gradcam"]  # the error map first, then run order
    assert files.figures["tpfpfn"] == {
        "root": "tpfpfn_maps/sample7_tpfpfn_root.png",
        "seed": "tpfpfn_maps/sample7_tpfpfn_seed.png",
    }
    assert files.figures["scorecam"]["root"] == "scorecam_maps/sample7_scorecam_root.png"
    assert files.figures["gradcam"]["seed"] == "gradcam_maps/sample7_gradcam_seed.png"
    assert all(list(per_class) == ["root", "seed"] for per_class in files.figures.values())
    assert files.sample_figures == {"comparison": "comparison/sample7_comparison.png"}
    assert files.raw == "raw_maps/sample7.npz" and files.record == "samples/sample7.json"


def test_class_order_follows_class_ids():
    files = _layout(class_ids=(4, 0, 2)).sample(0)
    assert list(files.figures["gradcam"]) == ["seed", "background", "hypocotyl"]


def test_all_lists_every_file_once():
    files = _layout().sample(2).all()
    assert len(files) == len(set(files)) == 3 * 2 + 4  # 3 kinds × 2 classes, raw, record, explorer, comparison
    assert files[-4:] == [
        "raw_maps/sample2.npz",
        "samples/sample2.json",
        "explorer/sample2.js",
        "comparison/sample2_comparison.png",
    ]


def test_one_method_has_no_comparison():
    files = _layout(methods=(("gradcam", "Grad-CAM", "gradcam_maps"),), comparison=False).sample(1)
    assert files.sample_figures == {} and list(files.figures) == ["tpfpfn", "gradcam"]
    assert len(files.all()) == 2 * 2 + 3 and None not in files.all()


def test_paths_are_relative_to_the_output_folder():
    layout = _layout()
    files = layout.sample(3)
    assert all(not Path(p).is_absolute() for p in files.all())
    assert layout.path(files.record) == Path("runs/a/samples/sample3.json")
