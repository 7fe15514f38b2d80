"""Where every output of a run goes, resolved once per run.

    tpfpfn_maps/sample{i}_tpfpfn_{class}.png        <folder>/sample{i}_{method}_{class}.png (per method)
    comparison/sample{i}_comparison.png             (more than one method)
    raw_maps/sample{i}.npz, samples/sample{i}.json  summary.csv, summary.json, manifest.json, index.html

Method folders come from the registry (scorecam_maps, gradcam_maps, ...). Paths in records are
relative to the output folder, so a run folder can be moved or merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ERROR_KIND, ERROR_DIR = "tpfpfn", "tpfpfn_maps"
COMPARE_DIR, RAW_DIR, SAMPLE_DIR = "comparison", "raw_maps", "samples"


def sample_id(index: int) -> str:
    return f"sample{index}"


@dataclass(frozen=True)
class SampleFiles:
    """Relative paths of one sample's files. figures: {kind: {class name: path}}, kind = tpfpfn or a method."""

    figures: dict[str, dict[str, str]]
    comparison: str | None
    raw: str
    record: str

    def all(self) -> list[str]:
        files = [p for per_class in self.figures.values() for p in per_class.values()] + [self.raw, self.record]
        return files + ([self.comparison] if self.comparison else [])


@dataclass(frozen=True)
class Layout:
    """The output folder, the explained classes (names, in order) and the figure kinds of a run."""

    out: Path
    class_names: tuple[str, ...]  # every class of the model, by output index
    class_ids: tuple[int, ...]  # the explained ones
    method_folders: tuple[tuple[str, str], ...]  # (method name, folder), in run order
    comparison: bool

    def sample(self, index: int) -> SampleFiles:
        sid = sample_id(index)
        names = [self.class_names[c] for c in self.class_ids]
        figures = {ERROR_KIND: {n: f"{ERROR_DIR}/{sid}_{ERROR_KIND}_{n}.png" for n in names}}
        for method, folder in self.method_folders:
            figures[method] = {n: f"{folder}/{sid}_{method}_{n}.png" for n in names}
        return SampleFiles(
            figures=figures,
            comparison=f"{COMPARE_DIR}/{sid}_comparison.png" if self.comparison else None,
            raw=f"{RAW_DIR}/{sid}.npz",
            record=f"{SAMPLE_DIR}/{sid}.json",
        )

    def path(self, relative: str) -> Path:
        return self.out / relative
