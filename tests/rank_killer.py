"""The Grad-CAM CLI for torchrun tests: the rank named by XAI_TEST_KILL_RANK kills itself with SIGKILL as it
starts its second sample, after its first is complete (a rank dying mid-run). Test support only."""

from __future__ import annotations

import os
import signal
import sys

import xai.pipeline.explain_stage as stage
from xai.cli import main

_real = stage.explain_samples
_started = [0]


def _dying(items, execution):
    _started[0] += 1
    if _started[0] == 2 and os.environ.get("RANK") == os.environ.get("XAI_TEST_KILL_RANK"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(items, execution)


stage.explain_samples = _dying
sys.exit(main("gradcam"))
