"""run(): explain then finalize in one process; which records a fresh run, --resume and a shard keep."""

from __future__ import annotations

import json

from xai.pipeline.distributed import Shard
from xai.pipeline.layout import Layout
from xai.pipeline.options import RunOptions
from xai.pipeline.outputs import output_kinds
from xai.pipeline.records import DONE, read_records
from xai.pipeline.runner import _drop_other_records, run


def _opts(tiny_run, out, **kw) -> RunOptions:
    _base, data, ckpt = tiny_run
    values = {
        "model_path": str(ckpt),
        "data_root": str(data),
        "output_dir": str(out),
        "methods": ("gradcam",),
        "classes": ("root",),
        "num_samples": 2,
        "workers": 0,
        "progress": False,
        "command": ["seedling-xai", "gradcam"],
        **kw,
    }
    return RunOptions(**values)


def _plant(out, index: int) -> None:
    """A record of sample `index` as an earlier, longer run would have left it."""
    data = json.loads((out / "samples" / "sample1.json").read_text(encoding="utf-8"))
    data.update(id=f"sample{index}", index=index)
    (out / "samples" / f"sample{index}.json").write_text(json.dumps(data), encoding="utf-8")


def _records(out) -> list[str]:
    return sorted(p.name for p in (out / "samples").iterdir())


def test_run_writes_every_file_and_returns_the_manifest(tiny_run, tmp_path):
    out = tmp_path / "run"
    manifest = run(_opts(tiny_run, out))
    assert manifest is not None
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8")) == manifest
    assert manifest["samples"] == {"explained": 2, "skipped": [], "runs_mixed": False}
    assert manifest["split"] == "test" and manifest["classes"] == ["root"] and manifest["device"] == "cpu"
    assert manifest["command"] == ["seedling-xai", "gradcam"] and list(manifest["methods"]) == ["gradcam"]
    records = read_records(out)
    assert [(r.id, r.status) for r in records] == [("sample0", DONE), ("sample1", DONE)]
    layout = Layout(
        out=out,
        class_names=("background", "root", "hypocotyl", "cotyledon", "seed"),
        class_ids=(1,),
        kinds=tuple(output_kinds([("gradcam", "Grad-CAM", "gradcam_maps")], comparison=False)),
    )
    for r in records:
        files = layout.sample(r.index)
        assert r.figures == files.figures and r.raw == files.raw
        assert all(layout.path(p).is_file() for p in files.all())
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [(row["sample"], row["class"]) for row in rows] == [("sample0", "root"), ("sample1", "root")]


def test_resume_and_shards_keep_other_records_a_fresh_run_drops_them(tiny_run, tmp_path):
    out = tmp_path / "merge"
    first = run(_opts(tiny_run, out))
    assert first is not None and first["samples"]["explained"] == 2
    _plant(out, 9)
    (out / "samples" / "notes.txt").write_text("mine", encoding="utf-8")

    resumed = run(_opts(tiny_run, out, num_samples=1, resume=True))
    assert _records(out) == ["notes.txt", "sample0.json", "sample1.json", "sample9.json"]
    assert resumed is not None and resumed["samples"]["explained"] == 3  # --resume merges

    manifest_before = (out / "manifest.json").read_text(encoding="utf-8")
    assert run(_opts(tiny_run, out, num_samples=1), shard=Shard(0, 2)) is None  # a shard does not finalize
    assert _records(out) == ["notes.txt", "sample0.json", "sample1.json", "sample9.json"]
    assert (out / "manifest.json").read_text(encoding="utf-8") == manifest_before

    fresh = run(_opts(tiny_run, out, num_samples=1))
    assert _records(out) == ["notes.txt", "sample0.json"]  # only records are removed
    assert fresh is not None and fresh["samples"]["explained"] == 1
    assert {row["sample"] for row in json.loads((out / "summary.json").read_text(encoding="utf-8"))} == {"sample0"}


def test_drop_other_records_matches_whole_names(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    names = ["sample1.json", "sample10.json", "sample2.json", "sample12.json", "sample1.json.part", "sample1.npz"]
    for name in names:
        (samples / name).write_text("{}", encoding="utf-8")
    layout = Layout(tmp_path, ("a", "b"), (0, 1), tuple(output_kinds([("gradcam", "Grad-CAM", "gradcam_maps")], False)))
    _drop_other_records(layout, [1, 2])
    assert sorted(p.name for p in samples.iterdir()) == [
        "sample1.json",
        "sample1.json.part",
        "sample1.npz",
        "sample2.json",
    ]
    _drop_other_records(Layout(tmp_path / "new", ("a",), (0,), ()), [0])
    assert not (tmp_path / "new").exists()  # a folder without records is left as it is
