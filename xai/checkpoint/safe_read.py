"""Reading a pickled checkpoint (torch.save) without running code from it.

1. torch.load(weights_only=True) with public tools only: torch.serialization.get_unsafe_globals_in_checkpoint names
   the globals the file uses beyond torch's defaults; each must lie in the allowed packages (standins.py) and is
   given an inert stand-in through torch.serialization.safe_globals. Any other global is refused, naming it.
2. Fallback, only for files torch's weights-only reader cannot parse (pickle protocol 4+ framing, the pre-1.6
   format): torch.load(weights_only=False, pickle_module=...) with Python's documented "restricting globals"
   pattern: find_class returns a stand-in, or a fresh wrapper of one of the few globals in _CALLABLES (the
   tensor-rebuilding functions every torch pickle names, which torch's own weights-only reader allows, found
   the way any unpickler finds them), and refuses any other name. No opcode is inspected by hand.
3. trust=True (--trust_checkpoint), after the safe path refused the file: full torch.load(weights_only=False),
   which runs code from the file; classes missing here fall back to stand-ins.
"""

from __future__ import annotations

import pickle
import types
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import XAIError
from .standins import may_stand_in, stand_in, stand_ins

_REFUSE = (
    "{path}: refusing to unpickle {names}: checkpoints can run code when unpickled; "
    "pass --trust_checkpoint to permit full unpickling if you trust this file"
)


class Refused(Exception):
    """The file names globals outside the allowlist."""


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    line = lines[0] if lines else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def corrupt(path: Path, exc: BaseException) -> XAIError:
    return XAIError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {first_line(exc)}")


def read_pickle(path: Path, *, trust: bool, map_location: Any) -> tuple[Any, str]:
    """(the unpickled object, how: 'weights_only', 'fallback' or 'trusted'); XAIError when refused or damaged."""
    if zipfile.is_zipfile(path) and _is_torchscript(path):
        raise XAIError(
            f"{path}: is a TorchScript archive (torch.jit.save), which this tool does not load; "
            "save the model with torch.save (whole model or state_dict) instead"
        )
    try:
        return _read_safely(path)
    except Refused as exc:
        if not trust:
            raise XAIError(_REFUSE.format(path=path, names=", ".join(exc.args))) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=False), "trusted"
    except (ModuleNotFoundError, AttributeError):
        return _read_restricted(path, trust=True), "trusted"
    except Exception as exc:  # any other failure means a damaged file
        raise corrupt(path, exc) from None


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _read_safely(path: Path) -> tuple[Any, str]:
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, pickle.UnpicklingError):  # not the zip format, or opcodes torch's reader does not know
        return _read_restricted(path, trust=False), "fallback"
    except Exception as exc:
        raise corrupt(path, exc) from None
    refused = [n for n in names if not may_stand_in(n)]
    if refused:
        raise Refused(*refused)
    try:
        with torch.serialization.safe_globals(stand_ins(names)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
    except pickle.UnpicklingError:
        return _read_restricted(path, trust=False), "fallback"
    except Exception as exc:
        raise corrupt(path, exc) from None


# Globals that torch.save writes to rebuild tensors and parameters; the fallback lets a file name these
# and nothing else that can be called (by name only: the functions are resolved by the unpickler).
_TENSOR_REBUILDERS = ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state")
_CALLABLES = frozenset(
    {"collections.OrderedDict", "builtins.set", "_codecs.encode"}
    | {f"torch._utils.{name}" for name in _TENSOR_REBUILDERS}
)


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A fresh wrapper per file: a BUILD aimed at it changes only the wrapper."""

    def call(*args: Any) -> Any:
        return fn(*args)

    return call


def _latin1(text: Any, encoding: Any = "latin1") -> bytes:
    """_codecs.encode as protocol 2 uses it to write bytes, and nothing else."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as protocol 2 writes bytes")
    return text.encode("latin1")


def _restricted_module(trust: bool) -> types.ModuleType:
    """A pickle module for torch.load whose Unpickler finds only stand-ins and _callables() (or, trusted, any
    importable global, with stand-ins for missing ones)."""
    real: dict[str, Callable[..., Any]] = {}
    made: dict[str, type] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            full = f"{'builtins' if module == '__builtin__' else module}.{name}"  # protocol <= 2 names
            if full in _CALLABLES:
                if full not in real:
                    real[full] = _latin1 if full == "_codecs.encode" else _wrap(super().find_class(module, name))
                return real[full]
            if trust:
                try:
                    return super().find_class(module, name)
                except (ImportError, AttributeError):
                    pass
            elif not may_stand_in(full):
                raise Refused(full)
            if full not in made:
                made[full] = stand_in(full)
            return made[full]

    mod = types.ModuleType("seedling_restricted_pickle")
    mod.Unpickler = Unpickler  # type: ignore[attr-defined]
    mod.load = lambda fh, **kw: Unpickler(fh, **kw).load()  # type: ignore[attr-defined]
    return mod


def _read_restricted(path: Path, *, trust: bool) -> Any:
    try:
        with warnings.catch_warnings():
            # Pre-1.6 files compare each module class's saved source with the installed one: stand-ins have none.
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code", category=UserWarning)
            warnings.filterwarnings("ignore", category=torch.serialization.SourceChangeWarning)
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_module(trust))
    except Refused:
        raise
    except Exception as exc:
        raise corrupt(path, exc) from None
