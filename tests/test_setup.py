"""prepare(): what a run resolves once (classes, samples, engines, layout, run key), and what it refuses."""

from __future__ import annotations

import pytest

from tests.helpers import tiny_fpn
from xai.checkpoint import save_checkpoint
from xai.config import DEFAULT_CLASSES
from xai.errors import XAIError
from xai.pipeline.options import RunOptions
from xai.pipeline.setup import prepare

CLASSES = list(DEFAULT_CLASSES)


METHOD_OPTIONS = {"target_layer", "max_activation_maps", "batch_size", "weights", "region"}


def _opts(tiny_run, tmp_path, **kw) -> RunOptions:
    _base, data, ckpt = tiny_run
    method_options = {k: kw.pop(k) for k in list(kw) if k in METHOD_OPTIONS}
    values = {
        "model_path": str(ckpt),
        "data_root": str(data),
        "output_dir": str(tmp_path / "out"),
        "methods": ("gradcam",),
        "num_samples": 2,
        "progress": False,
        "command": ["test"],
        "method_options": method_options,
        **kw,
    }
    return RunOptions(**values)


def test_defaults_come_from_the_checkpoint_and_the_config(tiny_run, tmp_path):
    setup = prepare(_opts(tiny_run, tmp_path))
    assert setup.class_names == CLASSES and setup.class_ids == [0, 1, 2, 3, 4]
    assert setup.colors == [setup.cfg.palette[c] for c in CLASSES]
    assert setup.indices == [0, 1] and len(setup.dataset) == 2  # the tiny test split has two images
    assert setup.dataset[0]["image"].shape[-2:] == (64, 64)  # the checkpoint's img_size, not the config's
    assert list(setup.engines) == ["gradcam"] and setup.engines["gradcam"].options.target_layer == "decoder"
    assert setup.run_info["checkpoint"]["kind"] == "project" and setup.run_info["checkpoint"]["encoder"] == "resnet18"
    assert any("resnet18 taken from the checkpoint" in n for n in setup.notes)
    assert not setup.model.training
    assert [(k.name, k.folder, k.per) for k in setup.layout.kinds] == [
        ("tpfpfn", "tpfpfn_maps", "class"),
        ("gradcam", "gradcam_maps", "class"),
    ]  # one method: no comparison grid


def test_chosen_classes_methods_and_options_reach_engines_and_layout(tiny_run, tmp_path):
    opts = _opts(
        tiny_run,
        tmp_path,
        methods=("scorecam", "gradcam"),
        classes=("seed", "root"),
        target_layer="encoder.layer3",
        max_activation_maps=4,
        batch_size=3,
    )
    setup = prepare(opts)
    assert setup.class_ids == [4, 3] and setup.layout.class_ids == (4, 3)  # seed 4, root 3: the phenocyte ids
    assert setup.run_key["classes"] == setup.run_info["classes"] == ["seed", "root"]
    assert list(setup.engines) == ["scorecam", "gradcam"] and setup.layout.kinds[-1].name == "comparison"
    scorecam = setup.engines["scorecam"].options.describe()
    assert scorecam["max_activation_maps"] == 4 and scorecam["batch_size"] == 3
    assert {e.options.target_layer for e in setup.engines.values()} == {"encoder.layer3"}
    assert setup.label("scorecam") == "Score-CAM"
    assert setup.layout.sample(0).figures["scorecam"]["seed"] == "scorecam_maps/sample0_scorecam_seed.png"


def test_indices_follow_num_samples_all_and_the_split(tiny_run, tmp_path):
    assert prepare(_opts(tiny_run, tmp_path, num_samples=1)).indices == [0]
    assert prepare(_opts(tiny_run, tmp_path, num_samples=50)).indices == [0, 1]  # capped at the split's size
    assert prepare(_opts(tiny_run, tmp_path, split="train", all=True)).indices == list(range(10))


def test_run_key_holds_what_the_maps_depend_on_only(tiny_run, tmp_path):
    base = prepare(_opts(tiny_run, tmp_path, methods=("scorecam",), max_activation_maps=4, batch_size=2))
    bigger_batches = prepare(_opts(tiny_run, tmp_path, methods=("scorecam",), max_activation_maps=4, batch_size=8))
    other_split = prepare(_opts(tiny_run, tmp_path, methods=("scorecam",), max_activation_maps=4, split="train"))
    assert bigger_batches.run_key == base.run_key  # the batch size does not change the maps
    assert base.run_info["engines"] != bigger_batches.run_info["engines"]  # but the manifest says it
    assert other_split.run_key == {**base.run_key, "split": "train"}
    assert base.run_key["checkpoint"] == base.loaded.sha256 and base.run_key["img_size"] == [64, 64]
    centred = prepare(_opts(tiny_run, tmp_path, methods=("scorecam",), max_activation_maps=4, weights="raw"))
    assert centred.run_key["engines"]["scorecam"] == {**base.run_key["engines"]["scorecam"], "weights": "raw"}


def test_profiles_and_the_config_set_the_methods_defaults(tiny_run, tmp_path):
    paper = prepare(_opts(tiny_run, tmp_path, methods=("scorecam", "gradcam"), profile="paper"))
    assert paper.engines["scorecam"].options.weights == "raw" and paper.engines["scorecam"].options.baseline == "zero"
    default = prepare(_opts(tiny_run, tmp_path, methods=("scorecam",)))
    assert default.engines["scorecam"].options.weights == "centred"
    assert default.engines["scorecam"].options.target_layer == "decoder"  # the config's, not the encoder's


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"num_samples": 0}, "--num_samples must be at least 1, got 0"),
        ({"num_samples": -3}, "--num_samples must be at least 1, got -3"),
        ({"methods": ("scorecam",), "batch_size": 0}, "--batch_size must be at least 1, got 0"),
        ({"methods": ("scorecam",), "weights": "max"}, "unknown --weights 'max': choose one of centred, raw, softmax"),
        ({"profile": "newest"}, "unknown --profile 'newest': choose one of default, paper"),
        ({"pairs": ("gradcam",)}, "--pairs wants A@B with two different evaluated variants, got 'gradcam'"),
        ({"evaluate": True, "pairs": ("gradcam@nocam",)}, "--pairs wants A@B with two different evaluated variants"),
        (
            {"classes": ("root", "leaf", "stem")},
            f"unknown class(es) leaf, stem; the model's classes are {', '.join(CLASSES)}",
        ),
        ({"img_size": (64, 0)}, "--img_size must be at least 1, got 0"),
        ({"img_size": (64,)}, "--img_size takes 2 values (WIDTH HEIGHT), got [64]"),
        ({"img_size": (64, 100_000)}, "--img_size must be at most 16384, got 100000"),
        ({"eval_steps": 1}, "--eval_steps must be at least 2, got 1"),
        ({"sanity_samples": -1}, "--sanity_samples must be at least 0, got -1"),
        ({"workers": -1}, "--workers must be at least 0, got -1"),
        ({"max_pixels": 0}, "--max_pixels must be at least 1, got 0"),
        ({"split": "holdout"}, "unknown --split 'holdout': choose one of train, val, test"),
        ({"map_dtype": "int4"}, "unknown --map_dtype 'int4': choose one of float16, uint8, float32"),
        ({"methods": ()}, "no method to run"),
        ({"methods": ("gradcam", "nocam")}, "unknown method 'nocam'"),
        ({"encoder": "resnet34"}, "was trained with encoder resnet18, but --encoder resnet34 was given"),
        ({"target_layer": "encoder.layer9"}, "unknown target layer 'encoder.layer9'"),
        ({"evaluate": True, "eval_steps": 1}, "--eval_steps must be at least 2, got 1"),
    ],
)
def test_bad_options_are_one_xai_error(tiny_run, tmp_path, kw, message):
    """One line; the library names its options (num_samples), the command line its flags (--num_samples).
    A run option is checked where it is declared (RunOptions), a method option when its engine is built."""
    with pytest.raises(XAIError) as err:
        prepare(_opts(tiny_run, tmp_path, **kw))
    assert message in err.value.cli_message() and "\n" not in str(err.value)
    assert message.replace("--", "") in str(err.value) and "--" not in str(err.value)


def test_class_names_unfit_for_file_names_are_refused(tiny_run, tmp_path):
    ckpt = tmp_path / "slash.pth"
    classes = ["background", "root/tip", "hypocotyl", "cotyledon", "seed"]
    save_checkpoint(ckpt, tiny_fpn(seed=0), arch="FPN", encoder="resnet18", classes=classes, img_size=(64, 64))
    with pytest.raises(XAIError, match=r"class name\(s\) 'root/tip' cannot be used in file names"):
        prepare(_opts(tiny_run, tmp_path, model_path=str(ckpt)))


def test_data_root_falls_back_to_the_demo_dataset(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's data/phenocyte_seg and data/demo are relative to here
    with pytest.raises(XAIError, match="seedling-xai synth --out data/demo"):
        prepare(_opts(tiny_run, tmp_path, data_root=None))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").symlink_to(tiny_run[1], target_is_directory=True)
    setup = prepare(_opts(tiny_run, tmp_path, data_root=None))
    assert setup.run_key["data_root"] == "data/demo" and setup.indices == [0, 1]
    with pytest.raises(XAIError, match="data root not found: "):
        prepare(_opts(tiny_run, tmp_path, data_root=str(tmp_path / "nowhere")))


def test_class_names_rename_the_outputs_and_keep_their_colours(tiny_run, tmp_path):
    scripts = ["background", "root", "hypocotyl", "cotyledon", "seed"]
    setup = prepare(_opts(tiny_run, tmp_path, class_names=scripts))
    assert setup.class_names == scripts and setup.run_key["classes"] == scripts
    assert setup.colors[1] == setup.cfg.palette["root"]  # a name keeps its colour whatever its id
    with pytest.raises(XAIError) as err:
        prepare(_opts(tiny_run, tmp_path, class_names=["a", "b"]))
    assert err.value.cli_message() == "--class_names names 2 classes, but the model has 5 outputs"
    assert setup.run_key["preprocessing"] == {
        "interpolation": "bilinear",
        "pad_position": "center",
        "pad_value": 0,
        "multiple": 32,
    }
