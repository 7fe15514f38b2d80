"""tune_cpu_allocator: a bool, idempotent, the two mallopt settings it asks glibc for, a no-op elsewhere."""

from __future__ import annotations

import pytest

import xai.runtime as runtime


class _FakeLibc:
    def __init__(self, result: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.result = result

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


def test_is_a_bool_and_idempotent_here():
    first = runtime.tune_cpu_allocator()
    assert isinstance(first, bool)
    assert runtime.tune_cpu_allocator() is first


def test_sets_mmap_and_trim_thresholds_once(monkeypatch):
    libc = _FakeLibc()
    loaded = []
    monkeypatch.setattr(runtime, "_tuned", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")

    def cdll(name: str) -> _FakeLibc:
        loaded.append(name)
        return libc

    monkeypatch.setattr(runtime.ctypes, "CDLL", cdll)
    assert runtime.tune_cpu_allocator(keep_bytes=1000) is True
    assert libc.calls == [(-3, 1000), (-1, 2000)]  # M_MMAP_THRESHOLD, then M_TRIM_THRESHOLD at twice it
    assert runtime.tune_cpu_allocator(keep_bytes=5) is True
    assert len(loaded) == 1 and len(libc.calls) == 2, "a second call changes nothing"


def test_a_refused_setting_reports_false(monkeypatch):
    libc = _FakeLibc(result=0)
    monkeypatch.setattr(runtime, "_tuned", False)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: libc)
    assert runtime.tune_cpu_allocator() is False
    assert runtime.tune_cpu_allocator() is False and len(libc.calls) == 2, "not tuned: it tries again"


@pytest.mark.parametrize("platform,libc_error", [("darwin", None), ("win32", None), ("linux", OSError)])
def test_no_op_without_glibc(monkeypatch, platform, libc_error):
    def cdll(name):
        if libc_error is None:
            raise AssertionError("libc loaded off Linux")
        raise libc_error("no libc")

    monkeypatch.setattr(runtime, "_tuned", False)
    monkeypatch.setattr(runtime.sys, "platform", platform)
    monkeypatch.setattr(runtime.ctypes, "CDLL", cdll)
    assert runtime.tune_cpu_allocator() is False


def test_children_started_inside_leave_job_signals_to_this_process():
    import signal
    import subprocess
    import sys

    from xai.runtime import children_leave_signals_to_this_process

    probe = [
        sys.executable,
        "-c",
        "import signal; print(signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []))",
    ]
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with children_leave_signals_to_this_process():
        inside = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    assert inside == "True"
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # this process's mask is restored
    outside = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    assert outside == str(signal.SIGTERM in before)


def test_a_worker_leaves_the_job_process_group_and_can_be_stopped_alone():
    import subprocess
    import sys

    from xai.runtime import children_leave_signals_to_this_process

    probe = (
        "import os, signal; from xai.runtime import leave_the_job_process_group as leave; leave(); "
        "print(os.getpgid(0) == os.getpid(), signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []), "
        "signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, signal.getsignal(signal.SIGINT) == signal.SIG_IGN)"
    )
    with children_leave_signals_to_this_process():
        child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["True", "False", "True", "True"]  # own group, SIGTERM deliverable again
