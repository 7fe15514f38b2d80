"""Process-level settings that make long CPU runs fast; the CLIs apply them, library users may too."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_tuned = False


def tune_cpu_allocator(keep_bytes: int = 1 << 30) -> bool:
    """Keep large freed blocks in glibc's heap instead of returning them to the OS after every op.

    CPU inference allocates and frees feature maps of many MB per layer; by default glibc serves each
    with mmap/munmap, so every forward pass page-faults its memory in again (here half the time of an
    se_resnext50 forward went to the kernel). Raising M_MMAP_THRESHOLD and M_TRIM_THRESHOLD reuses
    that memory instead: the process keeps its peak heap until it exits. No-op off glibc.
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, int(keep_bytes))) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * int(keep_bytes)))
    return _tuned


@contextlib.contextmanager
def children_leave_signals_to_this_process() -> Iterator[None]:
    """Processes started inside (loader and figure workers) inherit SIGINT
    and SIGTERM blocked, so that a signal sent to a job's whole process group (Ctrl-C in a terminal, a
    scheduler's preemption) reaches only this process, which then finishes or drops its samples and ends
    them. Without it a worker killed mid-message can leave this process waiting for the rest forever.
    The block is per thread: this process still receives both (in another thread, and its handler runs
    in the main thread as usual). Workers call leave_the_job_process_group() first thing, so that they
    can still be stopped one by one (terminate()) while group signals miss them."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a handler raising here leaves the mask as it was
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_PR_SET_PDEATHSIG = 1
PARENT_POLL_SECONDS = 0.5


def die_with_parent() -> None:
    """This worker ends when the process that started it does, however that one ends (kill -9, the OOM
    killer, a scheduler): Linux's parent-death signal (SIGKILL), and a daemon thread that exits the
    worker once its parent is gone (its parent id changes: also where prctl does not exist). Workers
    must be the main process's own children (spawn or fork, not a forkserver's)."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent or parent == 1:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def leave_the_job_process_group() -> None:
    """In a worker started under children_leave_signals_to_this_process: its own process group (a
    terminal's Ctrl-C and a scheduler's group SIGTERM go to the main process only), a SIGTERM that
    arrived before this point discarded, then SIGTERM back to its default so that the main process can
    stop the worker; SIGINT stays ignored. Leaving the group, it could outlive the job: it dies with its
    parent (die_with_parent)."""
    die_with_parent()
    if not hasattr(signal, "pthread_sigmask"):
        return
    with contextlib.suppress(OSError):  # already a group or session leader
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # discards a pending SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@contextlib.contextmanager
def seeded(seed: int, device: Any = None) -> Iterator[None]:
    """torch's (CPU and, for a CUDA device, that device's), numpy's and Python's global generators seeded
    with `seed` inside the block and restored after it: for libraries that draw from the global state
    (captum's samplers)."""
    import random

    import numpy as np
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [dev] if dev.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(dev):
                torch.cuda.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
