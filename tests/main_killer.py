"""The Grad-CAM CLI for a kill -9 test: as sample 3 starts, once the figure workers have drawn sample 0
(they have started), the main process writes the ids of all its
descendants (image-loading worker, figure workers) to $XAI_TEST_PIDS and SIGKILLs itself, as
the OOM killer or a scheduler does. Test support only."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import xai.pipeline.explain_stage as stage
from xai.cli import main

_real = stage.explain_samples


def descendants(pid: int) -> list[int]:
    """Every live process below pid (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _killed(items, execution):
    if any(item.index == 3 for item in items):
        drawn = Path(sys.argv[sys.argv.index("--output_dir") + 1]) / "gradcam_maps"
        deadline = time.monotonic() + 120
        while not list(drawn.glob("sample0_*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the figure workers have started and drawn sample 0
        Path(os.environ["XAI_TEST_PIDS"]).write_text(json.dumps(descendants(os.getpid())))
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(items, execution)


if __name__ == "__main__":  # figure workers import this module too
    stage.explain_samples = _killed
    sys.exit(main("gradcam"))
