"""User-facing errors: one clear line, no traceback, non-zero exit.

The library names its options as the library knows them (`batch_size`); a message marks each such name
with `option("batch_size")`, and the command line prints the same message with its flag
(`--batch_size`): the library never speaks in flags, and the CLIs never reword a library message.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

_OPTION = re.compile(r"⟨([A-Za-z_][A-Za-z0-9_]*)⟩")


def option(name: str) -> str:
    """The marked name of a library option inside an error message (printed as `name` or `--name`)."""
    return f"⟨{name}⟩"


def render(message: str, flags: bool = False) -> str:
    """message with its marked option names plain (`name`) or as command-line flags (`--name`)."""
    return _OPTION.sub(lambda m: f"--{m[1]}" if flags else m[1], message)


class XAIError(Exception):
    """An error caused by the user's input (file, option, data), reported as one line."""

    fatal = False  # True: no later sample of a batch run can succeed either (a full disk)
    exit_code = 2  # what the command line exits with: 2 for bad input (options, files, data)

    def __str__(self) -> str:
        return render(super().__str__())

    def cli_message(self) -> str:
        """The message as the command line prints it: option names as flags."""
        return render(super().__str__(), flags=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLIs' handler: stops a run as Ctrl-C does."""


class SampleError(XAIError):
    """A single sample cannot be read; batch runs skip it and report it at the end."""


class NothingExplained(XAIError):
    """A run that was asked for samples and explained none of them (each was skipped): exit code 1, so that
    a job array or a pipeline that checks exit codes does not take the split as explained."""

    exit_code = 1

    def __init__(self, skipped: list[dict[str, str]]):
        self.skipped = skipped
        first = skipped[0] if skipped else {"sample": "?", "image": "?", "error": "?"}
        super().__init__(
            f"no sample explained: all {len(skipped)} were skipped; the first, {first['sample']} "
            f"({first['image']}): {first['error']}"
        )


class OutOfMemory(XAIError):
    """Out of memory even at the smallest batch: `where` (what ran), `batch` (the size reached), `device`."""

    exit_code = 3

    def __init__(self, where: str, batch: int, device: str, cause: str):
        self.where, self.batch, self.device, self.cause = where, batch, device, cause
        super().__init__(
            f"out of memory in {where} on {device} even with {batch} image(s) per forward pass ({cause}); "
            f"use a smaller {option('img_size')} or another {option('device')}"
        )


class DiskFullError(XAIError):
    """The disk (or quota) is full: the run cannot go on writing."""

    fatal = True

    def __init__(self, path: str, reason: str):
        self.path = path
        super().__init__(
            f"disk full while writing {path} ({reason}); free some space and rerun with {option('resume')}"
        )


def first_line(exc: BaseException, limit: int = 300) -> str:
    """'Type: first line of the message', at most `limit` characters: what a one-line report shows."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_one_line(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """main(argv)'s exit code; an XAIError becomes `error: ...` on stderr and its exit code (2: bad input)."""
    try:
        return main(argv)
    except XAIError as exc:
        print(f"error: {exc.cli_message()}", file=sys.stderr)
        return exc.exit_code


def exit_with_one_line(main: Callable[[Sequence[str] | None], int]) -> NoReturn:
    """`python -m xai.<module>`: run main() on sys.argv and exit with its code (2 on an XAIError)."""
    sys.exit(run_one_line(main))
