"""User-facing errors: one clear line, no traceback, non-zero exit."""


class XAIError(Exception):
    """An error caused by the user's input (file, flag, data), reported as one line."""


class SampleError(XAIError):
    """A single sample cannot be read; batch runs skip it and report it at the end."""


def exit_with_one_line(main) -> None:
    """Run a module's main(); an XAIError becomes `error: ...` on stderr and exit code 2."""
    import sys

    try:
        sys.exit(main())
    except XAIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
