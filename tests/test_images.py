"""--images: photographs without masks (no split file, no mask) explained by every CLI, with prediction figures
and summaries, npz, resume, shards and --evaluate as for a split; bad input is one line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import xai.photographs
from xai.cli import main
from xai.config import DEFAULT_CLASSES
from xai.errors import XAIError
from xai.mapfile import load_maps
from xai.metrics.registry import measures, summary_columns
from xai.photographs import find_photographs
from xai.pipeline.options import RunOptions
from xai.synth import render_seedling

ROOT = Path(__file__).resolve().parent.parent
CLASSES = list(DEFAULT_CLASSES)
NO_TRUTH_COLUMNS = ["predicted_pixels", "mean_probability"]


def _test_split(data: Path) -> list[str]:
    with open(data / "dataset_split.csv") as fh:
        return [r["img_name"] for r in csv.DictReader(fh) if r["set"] == "test"]


@pytest.fixture(scope="module")
def photos(tiny_run, tmp_path_factory) -> Path:
    """A folder of three photographs and nothing else of theirs (no mask, no split file): the tiny split's two
    test photographs and one more synthetic photograph of another size, with a note and a subfolder beside."""
    _base, data, _ckpt = tiny_run
    folder = tmp_path_factory.mktemp("images") / "photos"
    folder.mkdir()
    for name in _test_split(data):
        shutil.copy(data / "images" / name, folder / name)
    rgb, _mask = render_seedling(np.random.default_rng(11), size=(80, 100))
    cv2.imwrite(str(folder / "zz_new.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("where these seedlings grew\n", encoding="utf-8")
    (folder / "older").mkdir()
    (folder / ".hidden.png").write_bytes(b"")  # passed over, as a glob passes it over
    return folder


def _args(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model_path",
        str(ckpt),
        "--output_dir",
        str(out),
        "--max_activation_maps",
        "4",
        "--batch_size",
        "4",
        "--no_progress",
        "--workers",
        "0",
        *extra,
    ]


def _summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_a_folder_of_photographs_without_masks_as_its_users_type_it(tiny_run, photos, tmp_path):
    _base, _data, ckpt = tiny_run
    command = [sys.executable, str(ROOT / "visualize_scorecam.py"), "--model_path", str(ckpt)]
    proc = subprocess.run([*command, "--data_root", str(photos)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: split file not found: {photos / 'dataset_split.csv'}; to explain the photographs of {photos} "
        f"without masks: --images {photos}"
    )  # what this run said before --images: the way to do it

    proc = subprocess.run([*command, "--images", str(photos)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "scorecam_visualizations"
    names = sorted(p.name for p in photos.iterdir() if p.suffix in (".png", ".jpg") and not p.name.startswith("."))
    for i in range(3):
        for c in CLASSES:
            assert (out / "prediction_maps" / f"sample{i}_prediction_{c}.png").read_bytes()[:4] == b"\x89PNG"
            assert (out / "scorecam_maps" / f"sample{i}_scorecam_{c}.png").is_file()
        maps = load_maps(out / "raw_maps" / f"sample{i}.npz")
        assert maps.gt is None and maps.gt_input is None and not maps.has_ground_truth  # no pretended mask
        assert maps.image_name == names[i] and maps.on_photograph("scorecam").shape[1:] == maps.pred.shape
        raw = np.load(out / "raw_maps" / f"sample{i}.npz")
        assert not bool(raw["ground_truth"]) and (raw["gt"] == 255).all()  # what older readers see: no label
        record = json.loads((out / "samples" / f"sample{i}.json").read_text(encoding="utf-8"))
        assert record["name"] == names[i] and record["source"] == str(photos / names[i])
    assert not (out / "tpfpfn_maps").exists()

    rows = _summary(out)
    assert list(rows[0]) == [
        "sample",
        "image",
        "class",
        *NO_TRUTH_COLUMNS,
        "scorecam_energy_in_pred",
        "scorecam_seconds",
    ]
    assert len(rows) == 15 and all(int(r["predicted_pixels"]) >= 0 for r in rows)
    assert all(0 < float(r["mean_probability"]) <= 1 for r in rows if int(r["predicted_pixels"]))
    assert all(r["mean_probability"] == "" for r in rows if not int(r["predicted_pixels"]))

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["split"] is None and manifest["data_root"] is None
    assert manifest["options"]["images"] == [str(photos)] and manifest["options"]["num_samples"] is None
    assert manifest["images"]["photographs"] == 3
    assert [s["path"] for s in manifest["images"]["skipped"]] == [str(photos / "notes.txt"), str(photos / "older")]
    assert [k["name"] for k in manifest["outputs"]] == ["prediction", "scorecam"]
    tail = proc.stderr.strip().splitlines()[-4:]
    assert tail[:3] == [
        "skipped 2 path(s) of --images that are not photographs:",
        f"  {photos / 'notes.txt'}: not a photograph (.txt)",
        f"  {photos / 'older'}: a folder (not searched: give it, or a glob such as DIR/**/*.jpg)",
    ]
    page = (out / "gallery.html").read_text(encoding="utf-8")
    assert "Predicted pixels" in page and "Mean probability" in page and "IoU" not in page
    assert "photographs without masks" in page and "have no mask" in page


QUICK = ["--patch_size", "32", "--stride", "16", "--num_mc_samples", "3"]


@pytest.mark.parametrize("command", ["gradcam", "occlusion", "uncertainty"])
def test_every_cli_explains_photographs(tiny_run, photos, tmp_path, command):
    _base, _data, ckpt = tiny_run
    out = tmp_path / command
    assert main(command, _args(ckpt, out, "--images", str(photos), "--num_samples", "2", *QUICK)) == 0
    for c in CLASSES:
        assert (out / "prediction_maps" / f"sample1_prediction_{c}.png").is_file()
        assert (out / f"{command}_maps" / f"sample1_{command}_{c}.png").is_file()
    assert not (out / "raw_maps" / "sample2.npz").exists()  # --num_samples caps the photographs
    header = list(_summary(out)[0])
    assert header[3:5] == NO_TRUTH_COLUMNS and f"{command}_energy_in_pred" in header
    assert not {"iou", "dice", "tp", "fp", "fn", f"{command}_energy_in_gt", f"{command}_error_auroc"} & set(header)
    if command == "uncertainty":
        assert (out / "uncertainty_maps" / "sample0_uncertainty.png").is_file()


def test_compare_shows_the_prediction_in_place_of_the_ground_truth(tiny_run, photos, tmp_path):
    _base, _data, ckpt = tiny_run
    out = tmp_path / "compare"
    assert main("scorecam", _args(ckpt, out, "--images", str(photos / "zz_new.jpg"), "--compare")) == 0
    figure = cv2.imread(str(out / "comparison" / "sample0_comparison.png"))
    assert figure is not None and figure.shape[0] > figure.shape[1]  # a row per class
    header = list(_summary(out)[0])
    assert header == ["sample", "image", "class", *NO_TRUTH_COLUMNS] + [
        f"{m}_{c}" for m in ("gradcam", "scorecam") for c in ("energy_in_pred", "seconds")
    ]


def test_evaluate_gives_none_with_a_reason_where_a_metric_needs_a_ground_truth(tiny_run, photos, tmp_path):
    _base, _data, ckpt = tiny_run
    out = tmp_path / "evaluate"
    tiny = ["--eval_steps", "4", "--no_road", "--sanity_samples", "0", "--stability_samples", "0"]
    args = _args(ckpt, out, "--images", str(photos / "zz_new.jpg"), "--evaluate", *tiny)
    assert main("gradcam", args) == 0
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    needs_truth = {"energy_pointing_game", "pointing_game", "rank_accuracy"}
    needs_truth |= {f"{m}_{s}" for m in ("energy_pointing_game", "rank_accuracy") for s in ("small", "medium", "large")}
    by_metric: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    assert needs_truth <= set(by_metric)
    for name in needs_truth:
        assert all(r["value"] == "" and r["reason"] == "no ground truth" for r in by_metric[name]), name
    for name in ("deletion_auc_linear", "insertion_auc_area", "average_drop", "complexity", "seconds"):
        assert any(r["value"] != "" for r in by_metric[name]), name  # the rest need no mask
    assert any(r["value"] != "" for r in by_metric["context_mean_colour"])  # the model's matrix needs none either
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "photographs without masks" in report
    # the verdicts keep the question, and say what would answer it
    assert "not measured: it needs ground-truth masks, a split (--split) rather than --images" in report
    assert "not measured: ROAD runs unless --no_road is given" in report


def test_resume_redoes_nothing_and_shards_merge(tiny_run, photos, tmp_path, capsys):
    _base, _data, ckpt = tiny_run
    out = tmp_path / "run"
    args = _args(ckpt, out, "--images", str(photos), "--methods", "gradcam")
    assert main("gradcam", args) == 0
    finished = [json.loads(p.read_text())["finished"] for p in sorted((out / "samples").glob("*.json"))]
    capsys.readouterr()
    assert main("gradcam", [*args, "--resume"]) == 0
    assert "resume: 3 sample(s) already complete, 0 to do" in capsys.readouterr().err
    assert [json.loads(p.read_text())["finished"] for p in sorted((out / "samples").glob("*.json"))] == finished

    sharded = tmp_path / "sharded"
    for k in range(2):
        assert main("gradcam", [*_args(ckpt, sharded, "--images", str(photos)), "--shard", f"{k}/2"]) == 0
    assert not (sharded / "manifest.json").exists()  # a shard does not finalize
    assert main("gradcam", ["--finalize", str(sharded)]) == 0
    manifest = json.loads((sharded / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["samples"]["explained"] == 3 and not manifest["samples"]["runs_mixed"]
    assert len(manifest["images"]["skipped"]) == 2
    for i in range(3):
        a, b = load_maps(out / "raw_maps" / f"sample{i}.npz"), load_maps(sharded / "raw_maps" / f"sample{i}.npz")
        assert a.image_name == b.image_name and np.array_equal(a.maps["gradcam"], b.maps["gradcam"])


def test_the_maps_of_a_photograph_are_those_of_the_same_photograph_of_a_split(tiny_run, photos, tmp_path):
    """Region pred: the mask does not matter, so a photograph explained without its mask gets the maps it gets
    with it (as stored: float16)."""
    _base, data, ckpt = tiny_run
    methods = ("--methods", "gradcam,scorecam")
    split, images = tmp_path / "split", tmp_path / "images"
    assert main("scorecam", [*_args(ckpt, split, *methods), "--data_root", str(data), "--num_samples", "2"]) == 0
    given = [str(photos / name) for name in _test_split(data)]
    assert main("scorecam", _args(ckpt, images, *methods, "--images", *given)) == 0
    for i in range(2):
        with_mask, without = (
            load_maps(split / "raw_maps" / f"sample{i}.npz"),
            load_maps(images / "raw_maps" / f"sample{i}.npz"),
        )
        assert with_mask.gt is not None and without.gt is None and with_mask.image_name == without.image_name
        assert np.array_equal(with_mask.pred_input, without.pred_input)
        for method in ("gradcam", "scorecam"):
            np.testing.assert_allclose(without.maps[method], with_mask.maps[method], rtol=0, atol=2**-11)


@pytest.fixture
def no_photograph_read(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a photograph was read")

    monkeypatch.setattr(xai.photographs, "read_image", refuse)


@pytest.mark.parametrize("region", ["gt", "tp", "fp", "fn"])
def test_a_region_that_needs_a_mask_is_refused_before_any_photograph_is_read(
    tiny_run, photos, tmp_path, capsys, no_photograph_read, region
):
    _base, _data, ckpt = tiny_run
    out = tmp_path / "out"
    assert main("gradcam", _args(ckpt, out, "--images", str(photos), "--region", region)) == 2
    assert _one_error_line(capsys) == (
        f"error: --region {region} needs a mask, and the photographs of --images have none: use --region pred "
        "(the default), all or instances"
    )
    assert not out.exists()


def _bad(tmp_path: Path, photos: Path, case: str) -> tuple[list[str], str]:
    """(the arguments, the one line they get) of one kind of bad --images."""
    empty, others = tmp_path / "empty", tmp_path / "others"
    empty.mkdir(exist_ok=True)
    others.mkdir(exist_ok=True)
    (others / "notes.txt").write_text("no photograph here", encoding="utf-8")
    return {
        "empty folder": (["--images", str(empty)], f"--images {empty}: no photograph in the folder (it is empty)"),
        "glob matching nothing": (
            ["--images", str(photos / "*.tif")],
            f"--images '{photos / '*.tif'}' matches no file",
        ),
        "missing path": (["--images", str(tmp_path / "nowhere")], f"--images {tmp_path / 'nowhere'}: no such file"),
        "no photograph in the folder": (
            ["--images", str(others)],
            f"--images {others}: no photograph in the folder (only 1 other entry: notes.txt)",
        ),
        "a file that is no photograph": (
            ["--images", str(others / "notes.txt")],
            f"no photograph among --images {others / 'notes.txt'} ({others / 'notes.txt'}: not a photograph (.txt))",
        ),
        "with --data_root": (
            ["--images", str(photos), "--data_root", str(photos)],
            "--images explains photographs without a dataset: leave out --data_root",
        ),
        "with --split": (["--images", str(photos), "--split", "val"], "argument --split: not allowed with argument"),
        "a variant's region": (
            ["--images", str(photos), "--evaluate", "--variants", "gradcam:region=fn"],
            "--region fn of --variants gradcam:region=fn needs a mask",
        ),
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "empty folder",
        "glob matching nothing",
        "missing path",
        "no photograph in the folder",
        "a file that is no photograph",
        "with --data_root",
        "with --split",
        "a variant's region",
    ],
)
def test_bad_images_are_one_line_and_exit_2(tiny_run, photos, tmp_path, capsys, no_photograph_read, case):
    _base, _data, ckpt = tiny_run
    extra, message = _bad(tmp_path, photos, case)
    out = tmp_path / "out"
    code: str | int | None
    try:
        code = main("gradcam", _args(ckpt, out, *extra))
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    assert code == 2
    line = _one_error_line(capsys)
    assert line.startswith("error: ") and message in line, line
    assert not out.exists()


def test_odd_names_unreadable_and_repeated_photographs(tiny_run, photos, tmp_path, capsys):
    """A name is untrusted: shown printable, never part of an output path; the record keeps the path. An
    unreadable photograph is skipped as a split's is; one given twice is explained once."""
    _base, _data, ckpt = tiny_run
    folder = tmp_path / "odd"
    folder.mkdir()
    odd = folder / "a\nb ..$x$.png"
    shutil.copy(photos / "zz_new.jpg", folder / "plain.jpg")
    odd.write_bytes((photos / "zz_new.jpg").read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    args = _args(ckpt, out, "--images", str(folder), str(folder / "plain.jpg"), "--methods", "gradcam")
    assert main("gradcam", args) == 0
    err = capsys.readouterr().err
    assert "skipped 1 sample(s):" in err and "Traceback" not in err
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["samples"]["explained"] == 2 and manifest["images"]["photographs"] == 3  # plain.jpg once
    (skipped,) = manifest["samples"]["skipped"]
    assert skipped["image"] == "broken.png" and "unreadable image" in skipped["error"]
    records = {r["name"]: r for r in (json.loads(p.read_text()) for p in (out / "samples").glob("*.json"))}
    assert set(records) == {"a?b ..$x$.png", "broken.png", "plain.jpg"}
    assert records["a?b ..$x$.png"]["source"] == str(odd) and records["broken.png"]["status"] == "skipped"
    assert records["broken.png"]["source"] == str(folder / "broken.png")
    assert {r["image"] for r in _summary(out)} == {"a?b ..$x$.png", "plain.jpg"}
    written = [p for p in out.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(out.resolve()) and "\n" not in str(p) for p in written)
    assert not any("$" in p.name or "plain" in p.name or "broken" in p.name for p in written)


def test_find_photographs_orders_names_and_skips(tmp_path):
    for folder in ("a", "b", "b/deep"):
        (tmp_path / folder).mkdir()
    for name in ("a/x.PNG", "a/y.jpg", "b/x.PNG", "b/deep/z.tif", "a/readme.md", "a/.thumbs.png"):
        (tmp_path / name).write_bytes(b"")
    given = [str(tmp_path / "a"), str(tmp_path / "b" / "**" / "*.*"), str(tmp_path / "a" / "y.jpg")]
    found = find_photographs(given)  # the order given, a folder's and a glob's by name, each once, no hidden file
    assert [p.relative_to(tmp_path).as_posix() for p in found.paths] == [
        "a/x.PNG",
        "a/y.jpg",
        "b/deep/z.tif",
        "b/x.PNG",
    ]
    assert found.names == [str(tmp_path / "a" / "x.PNG"), "y.jpg", "z.tif", str(tmp_path / "b" / "x.PNG")]
    assert [(Path(s.path).name, s.reason) for s in found.skipped] == [("readme.md", "not a photograph (.md)")]
    (tmp_path / "c").mkdir()
    with pytest.raises(XAIError, match="no photograph in the folder"):
        find_photographs([str(tmp_path / "a"), str(tmp_path / "c")])


def test_num_samples_caps_images_and_keeps_a_splits_default():
    opts = RunOptions(model_path="m.pth", images=("photos",))
    assert opts.sample_limit is None and opts.replace(num_samples=2).sample_limit == 2
    split = RunOptions(model_path="m.pth")
    assert split.sample_limit == 5 and split.replace(all=True).sample_limit is None
    assert "split" not in opts.result_key() and split.result_key()["split"] == "test"
    assert opts.describe()["num_samples"] is None and split.describe()["num_samples"] == 5  # the manifest


def test_the_summary_columns_without_a_ground_truth_come_from_the_registry():
    pred = np.array([[0, 1, 1], [1, 2, 2]], np.uint8)
    confidence = np.array([[0.9, 0.5, 0.7], [0.6, 0.8, 0.4]], np.float32)
    cam = np.array([[0.0, 1.0, 0.5], [0.5, 0.0, 0.0]], np.float32)
    row = summary_columns(
        None, pred, 1, {"m": cam, "u": cam}, {"m": "cam", "u": "uncertainty"}, confidence=lambda: confidence
    )
    assert list(row) == [*NO_TRUTH_COLUMNS, "m_energy_in_pred", "u_energy_in_pred"]
    assert row["predicted_pixels"] == 3 and row["mean_probability"] == pytest.approx(0.6)
    assert row["m_energy_in_pred"] == pytest.approx(1.0)
    assert summary_columns(None, pred, 4, {}, {})["mean_probability"] is None  # not predicted
    assert [m.name for m in measures("summary", ground_truth=False)] == [*NO_TRUTH_COLUMNS, "energy_in_pred"]


def test_the_prediction_figure_says_what_is_predicted_and_what_is_not(tmp_path):
    from xai.figures import save_prediction_figure

    rgb, mask = render_seedling(np.random.default_rng(3), size=(60, 120))
    colors = [(0, 0, 0), (0, 255, 0), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    confidence = np.full(mask.shape, 0.75, np.float32)
    for c, pred in ((3, mask), (3, np.zeros_like(mask)), (4, mask)):
        path = save_prediction_figure(tmp_path / f"p{c}.png", rgb, pred, c, CLASSES, colors, confidence)
        assert cv2.imread(str(path)) is not None
    with pytest.raises(ValueError, match="confidence has shape"):
        save_prediction_figure(tmp_path / "bad.png", rgb, mask, 3, CLASSES, colors, confidence[:10])
    assert not (tmp_path / "bad.png").exists()


def test_a_prediction_of_no_known_class_gets_a_figure_without_a_legend(tmp_path):
    from xai.figures import save_prediction_figure

    pred = np.full((40, 30), 200, np.uint8)  # ids outside the class list: nothing to put in the legend
    path = save_prediction_figure(
        tmp_path / "p.png", np.zeros((40, 30, 3), np.uint8), pred, 1, ["a", "b"], [(0, 0, 0)] * 2
    )
    assert cv2.imread(str(path)) is not None
