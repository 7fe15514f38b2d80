"""The typed record of one sample, written last as samples/sample{i}.json: everything finalize needs.

A record carries the run it belongs to (`run`: command, versions, config, checkpoint, device, engine
options) and the key its results depend on (`run_key`), so that records from shards, ranks or resumed
sessions can be merged and checked without any other file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io import write_json

DONE, SKIPPED = "done", "skipped"


@dataclass
class SampleRecord:
    """status "done": every file listed exists; "skipped": the sample could not be explained (error)."""

    id: str
    index: int
    name: str
    status: str
    run_key: dict[str, Any]
    run: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)  # per explained class: the summary row
    figures: dict[str, dict[str, str]] = field(default_factory=dict)  # per-class kind -> class -> relative path
    sample_figures: dict[str, str] = field(default_factory=dict)  # per-sample kind -> relative path
    raw: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per method, "model" and "render"
    batch_sizes: dict[str, int] = field(default_factory=dict)  # per method (and "evaluation"): what ran
    started: float = 0.0  # epoch seconds
    finished: float = 0.0
    worker: dict[str, Any] = field(default_factory=dict)  # host, pid, rank
    error: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)  # --evaluate: long rows (xai.evaluation)
    curves: dict[str, Any] = field(default_factory=dict)  # variant -> class -> curve name -> values
    sanity: dict[str, Any] = field(default_factory=dict)  # variant -> steps, Spearman per class
    evaluation_cost: dict[str, Any] = field(default_factory=dict)  # forwards per metric, seconds
    source: str | None = None  # the photograph's path (--images; a split's sample is its name)
    explorer: str | None = None  # the explorer's file of the sample (records of earlier releases: None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SampleRecord:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        if data.get("comparison") and "sample_figures" not in data:  # records of earlier releases
            values["sample_figures"] = {"comparison": data["comparison"]}
        return cls(**values)

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())


def read_record(path: Path) -> SampleRecord | None:
    """The record at path, or None when it is missing, unreadable or not a record."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return SampleRecord.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def read_records(out: Path) -> list[SampleRecord]:
    """Every readable record of a run folder, by sample index."""
    records = [r for p in sorted((Path(out) / "samples").glob("sample*.json")) if (r := read_record(p)) is not None]
    return sorted(records, key=lambda r: r.index)
