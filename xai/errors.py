"""User-facing errors: one clear line, no traceback, non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NoReturn


class XAIError(Exception):
    """An error caused by the user's input (file, flag, data), reported as one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLIs' handler: stops a run as Ctrl-C does."""


class SampleError(XAIError):
    """A single sample cannot be read; batch runs skip it and report it at the end."""


def run_one_line(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """main(argv)'s exit code; an XAIError becomes `error: ...` on stderr and exit code 2."""
    try:
        return main(argv)
    except XAIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def exit_with_one_line(main: Callable[[Sequence[str] | None], int]) -> NoReturn:
    """`python -m xai.<module>`: run main() on sys.argv and exit with its code (2 on an XAIError)."""
    sys.exit(run_one_line(main))
