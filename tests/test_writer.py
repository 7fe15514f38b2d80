"""The figure writer: N processes draw N figures at once; a sample finishes only when all its figures exist."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from xai.figures import save_heatmap_figure
from xai.pipeline.writer import FigureJob, FigureWriter

CLASSES = ["background", "root", "hypocotyl", "cotyledon", "seed"]
COLORS = [(0, 0, 0), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255)]


def _jobs(folder, sample, n=4):
    rng = np.random.default_rng(sample)
    rgb = rng.integers(0, 255, (80, 40, 3), dtype=np.uint8)
    cam = rng.random((80, 40)).astype(np.float32)
    return [
        FigureJob(save_heatmap_figure, folder / f"s{sample}_{k}.png", (rgb, cam, "root", "Score-CAM")) for k in range(n)
    ]


def test_two_processes_draw_and_samples_finish_in_order(tmp_path):
    finished: list[tuple[int, str | None, bool]] = []
    writer = FigureWriter(workers=2)
    try:
        for sample in range(3):
            jobs = _jobs(tmp_path, sample)

            def done(seconds: float, error: str | None, s: int = sample, j: list[FigureJob] = jobs) -> None:
                finished.append((s, error, all(job.path.is_file() for job in j)))

            writer.submit(jobs, done)
        writer.close()
    finally:
        writer.shutdown()
    assert finished == [(0, None, True), (1, None, True), (2, None, True)]
    assert len(writer.pids) == 2 and os.getpid() not in writer.pids
    assert writer.render_seconds > 0


def test_a_failing_figure_is_reported_with_its_sample(tmp_path):
    got = []
    writer = FigureWriter(workers=1)
    bad = FigureJob(
        save_heatmap_figure,
        tmp_path / "bad.png",
        (np.zeros((4, 4, 3), np.uint8), np.full((4, 4), np.nan, np.float32), "root", "Score-CAM"),
    )
    writer.submit([*_jobs(tmp_path, 0, 1), bad], lambda seconds, error: got.append(error))
    writer.close()
    assert len(got) == 1
    error = got[0]
    assert error is not None and error.startswith("ValueError") and "NaN" in error
    assert not (tmp_path / "bad.png").exists()


def test_no_workers_draws_in_this_process(tmp_path):
    got = []
    writer = FigureWriter(workers=0)
    writer.submit(_jobs(tmp_path, 1, 2), lambda seconds, error: got.append(error))
    writer.close()
    assert got == [None] and writer.pids == {os.getpid()}


def test_abort_drops_what_is_queued(tmp_path):
    got = []
    writer = FigureWriter(workers=1)
    for sample in range(2):
        writer.submit(_jobs(tmp_path, sample, 3), lambda seconds, error: got.append(error))
    writer.abort()
    assert got == [] or got == [None]  # the first sample may have finished before the abort
    assert writer.pool is None


def test_a_sample_finishes_as_soon_as_its_figures_exist(tmp_path):
    """No later submit is needed: a run killed while the model works on the next sample keeps this one."""
    finished = threading.Event()
    writer = FigureWriter(workers=1)
    try:
        writer.submit(_jobs(tmp_path, 0, 2), lambda seconds, error: finished.set())
        assert finished.wait(timeout=120)  # the finisher thread called done by itself
        assert writer.pending == [] and (tmp_path / "s0_1.png").is_file()
    finally:
        writer.shutdown()


def test_an_error_in_done_is_raised_in_the_calling_thread(tmp_path):
    called = threading.Event()

    def done(seconds: float, error: str | None) -> None:
        called.set()
        raise OSError(28, "No space left on device")

    writer = FigureWriter(workers=1)
    try:
        writer.submit(_jobs(tmp_path, 0, 1), done)
        assert called.wait(timeout=120)
        with pytest.raises(OSError, match="No space left"):
            writer.close()
    finally:
        writer.shutdown()


def test_a_samples_jobs_are_dealt_into_one_task_per_worker():
    from xai.pipeline.writer import tasks

    jobs = [FigureJob(save_heatmap_figure, f"f{k}.png") for k in range(5)]
    assert [[j.path for j in t] for t in tasks(jobs, 2)] == [["f0.png", "f2.png", "f4.png"], ["f1.png", "f3.png"]]
    assert len(tasks(jobs, 8)) == 5 and tasks(jobs[:1], 0) == [jobs[:1]]


def _priority(path: object) -> None:
    with open(str(path), "w") as fh:
        fh.write(str(os.nice(0)))


def test_workers_draw_at_a_lower_priority_than_the_main_process(tmp_path):
    from xai.pipeline.writer import WORKER_NICENESS

    writer = FigureWriter(workers=1)
    writer.submit([FigureJob(_priority, tmp_path / "nice.txt")], lambda seconds, error: None)
    writer.close()
    assert int((tmp_path / "nice.txt").read_text()) == min(19, os.nice(0) + WORKER_NICENESS)
