"""The batch pipeline behind both CLIs, in two stages.

- explain (xai.pipeline.explain_stage): per sample, run the engines, map the results back onto the
  photograph, write the sample's figures, raw maps and finally its record samples/sample{i}.json
  (the completion marker; xai.pipeline.records.SampleRecord says everything later stages need).
- finalize (xai.pipeline.finalize_stage): summary.csv/json, manifest.json, index.html (the explorer) and
  gallery.html, rebuilt from samples/*.json alone, so `--finalize OUTPUT_DIR` needs nothing but that folder.

`run(RunOptions)` does both. Nothing here imports torch at package import (figure worker processes
import xai.pipeline.writer without it).
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "RunOptions": "xai.pipeline.options",
    "run": "xai.pipeline.runner",
    "finalize": "xai.pipeline.finalize_stage",
    "explain": "xai.pipeline.explain_stage",
    "prepare": "xai.pipeline.setup",
    "SampleRecord": "xai.pipeline.records",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xai.pipeline' has no attribute {name!r}")
