"""The tutorials run as tests: `pytest --nbmake notebooks` (in `make test`, beside tests/).

Under pytest-xdist (`make test`: two processes on two cores) each notebook's kernel gets one CPU thread, as
tests/conftest.py gives each test process: two kernels of two threads each would run slower than one thread
each. The setting applies to the notebooks' own runs only, not to the tests collected beside them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return (yield)
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch when the kernel process starts
    try:
        return (yield)
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before
