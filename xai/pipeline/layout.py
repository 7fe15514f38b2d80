"""Where every output of a run goes, resolved once per run from its output kinds (xai.pipeline.outputs).

    <kind folder>/sample{i}_<kind>_{class}.png       per-class kinds (tpfpfn_maps/, scorecam_maps/, ...)
    comparison/sample{i}_comparison.png              per-sample kinds (more than one method)
    raw_maps/sample{i}.npz, samples/sample{i}.json, explorer/sample{i}.js (xai.explorer)
    summary.csv, summary.json, manifest.json, index.html (the explorer), gallery.html, explorer/data.js,
    metrics.*, report.*                              the run's (xai.run_files)

Paths in records are relative to the output folder, so a run folder can be moved or merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..explorer import explorer_sample_file
from ..run_files import RUN_FILES, RunFiles
from .outputs import OutputKind

RAW_DIR, SAMPLE_DIR = "raw_maps", "samples"
__all__ = ["RAW_DIR", "RUN_FILES", "SAMPLE_DIR", "Layout", "RunFiles", "SampleFiles", "sample_id"]


def sample_id(index: int) -> str:
    return f"sample{index}"


@dataclass(frozen=True)
class SampleFiles:
    """Relative paths of one sample's files. figures: {kind: {class name: path}} of the per-class kinds;
    sample_figures: {kind: path} of the per-sample kinds."""

    figures: dict[str, dict[str, str]]
    sample_figures: dict[str, str]
    raw: str
    record: str
    explorer: str

    def all(self) -> list[str]:
        files = [p for per_class in self.figures.values() for p in per_class.values()]
        files += [self.raw, self.record, self.explorer]
        return files + list(self.sample_figures.values())


@dataclass(frozen=True)
class Layout:
    """The output folder, the explained classes (names, in order) and the output kinds of a run."""

    out: Path
    class_names: tuple[str, ...]  # every class of the model, by output index
    class_ids: tuple[int, ...]  # the explained ones
    kinds: tuple[OutputKind, ...]

    def sample(self, index: int) -> SampleFiles:
        sid = sample_id(index)
        names = [self.class_names[c] for c in self.class_ids]
        return SampleFiles(
            figures={k.name: {n: k.file(sid, n) for n in names} for k in self.kinds if k.per == "class"},
            sample_figures={k.name: k.file(sid) for k in self.kinds if k.per == "sample"},
            raw=f"{RAW_DIR}/{sid}.npz",
            record=f"{SAMPLE_DIR}/{sid}.json",
            explorer=explorer_sample_file(sid),
        )

    def path(self, relative: str) -> Path:
        return self.out / relative
