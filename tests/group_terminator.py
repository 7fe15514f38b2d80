"""The Grad-CAM CLI for a preemption test: as sample 1 starts, SIGTERM goes to the run's whole process group
(the main process, its image-loading worker and its figure workers), as a scheduler or a terminal sends it.
Test support only."""

from __future__ import annotations

import os
import signal
import sys

import xai.pipeline.explain_stage as stage
from xai.cli import main

_real = stage.explain_samples


def _preempted(items, execution):
    if any(item.index == 1 for item in items):
        os.killpg(os.getpgid(0), signal.SIGTERM)
    return _real(items, execution)


if __name__ == "__main__":  # figure workers import this module too
    stage.explain_samples = _preempted
    sys.exit(main("gradcam"))
