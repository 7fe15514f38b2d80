"""User-facing errors: one clear line, no traceback, non-zero exit."""


class XAIError(Exception):
    """An error caused by the user's input (file, flag, data), reported as one line."""


class SampleError(XAIError):
    """A single sample cannot be read; batch runs skip it and report it at the end."""
