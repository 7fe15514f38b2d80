"""SampleRecord: JSON round trip, and reading records back from a run folder (unreadable ones skipped)."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from xai.pipeline.records import DONE, SKIPPED, SampleRecord, read_record, read_records


def _record(index: int, status: str = DONE, **kw) -> SampleRecord:
    return SampleRecord(
        id=f"sample{index}",
        index=index,
        name=f"seedling_{index:04d}.png",
        status=status,
        run_key={"checkpoint": "ab12", "methods": ["gradcam"]},
        run={"command": ["seedling-xai"], "split": "test"},
        **kw,
    )


def _full() -> SampleRecord:
    """Every optional field away from its default."""
    return _record(
        3,
        rows=[{"class": "root", "iou": 0.25, "dice": 0.4}],
        figures={"gradcam": {"root": "gradcam_maps/sample3_gradcam_root.png"}},
        sample_figures={"comparison": "comparison/sample3_comparison.png"},
        raw="raw_maps/sample3.npz",
        seconds={"gradcam": 0.5, "model": 0.1, "render": 1.25},
        batch_sizes={"scorecam": 64, "evaluation": 32},
        started=1700000000.5,
        finished=1700000002.0,
        worker={"host": "h", "pid": 12, "rank": 0},
        error="none",
        metrics=[{"metric": "deletion_auc", "value": 0.125}],
        curves={"gradcam": {"root": {"deletion": [1.0, 0.5]}}},
        sanity={"gradcam": {"steps": ["decoder"], "spearman": {"root": [0.5]}}},
        evaluation_cost={"forwards": {"deletion": 50}, "seconds": 2.0},
        source="photos/seedling_0003.png",
        explorer="explorer/sample3.js",
    )


def test_to_json_from_json_round_trip():
    record = _full()
    defaults = _record(3)
    optional = [f.name for f in fields(SampleRecord)][6:]
    assert optional[0] == "rows" and all(getattr(record, n) != getattr(defaults, n) for n in optional)
    data = json.loads(json.dumps(record.to_json()))
    assert set(data) == {f.name for f in fields(SampleRecord)}
    assert SampleRecord.from_json(data) == record


def test_from_json_ignores_unknown_keys_and_fills_defaults():
    data = {**_record(1).to_json(), "written_by_a_newer_version": 1}
    for key in ("rows", "metrics", "sample_figures", "started"):
        del data[key]
    record = SampleRecord.from_json(data)
    assert record == _record(1)
    assert record.rows == [] and record.sample_figures == {} and record.started == 0.0


def test_records_of_earlier_releases_keep_their_comparison():
    data = {**_record(2).to_json(), "comparison": "comparison/sample2_comparison.png"}
    del data["sample_figures"]
    assert SampleRecord.from_json(data).sample_figures == {"comparison": "comparison/sample2_comparison.png"}


def test_save_then_read_record(tmp_path):
    record = _full()
    path = tmp_path / "samples" / "sample3.json"
    path.parent.mkdir()
    record.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["figures"] == record.figures
    assert read_record(path) == record


@pytest.mark.parametrize(
    "content",
    [
        None,  # missing
        b'{"id": "sample0", "index": 0, "na',  # truncated (a killed writer)
        b"[1, 2, 3]",  # JSON, but not an object
        b'"sample0"',
        b'{"id": "sample0", "index": 0}',  # an object without the required fields
        b"\xff\xfe\x00garbage",  # not UTF-8
    ],
)
def test_read_record_is_none_for_what_is_not_a_record(tmp_path, content):
    path = tmp_path / "sample0.json"
    if content is not None:
        path.write_bytes(content)
    assert read_record(path) is None


def test_read_record_of_a_folder_is_none(tmp_path):
    assert read_record(tmp_path) is None


def test_read_records_sorts_by_index_and_skips_unreadable_files(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    for i in (10, 2, 0):
        _record(i).save(samples / f"sample{i}.json")
    skipped = _record(1, status=SKIPPED, error="ValueError: bad image")
    skipped.save(samples / "sample1.json")
    (samples / "sample5.json").write_text('{"id": "sample5", "ind', encoding="utf-8")  # truncated
    (samples / "sample7.json.part").write_text(json.dumps(_record(7).to_json()), encoding="utf-8")
    _record(8).save(samples / "other8.json")  # not a sample*.json name
    records = read_records(tmp_path)
    assert [r.index for r in records] == [0, 1, 2, 10]  # numeric, not sample10 before sample2
    assert records[1] == skipped


def test_read_records_of_a_folder_without_samples(tmp_path):
    assert read_records(tmp_path) == []
    assert read_records(tmp_path / "missing") == []
