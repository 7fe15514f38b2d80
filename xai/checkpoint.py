"""Checkpoints: the project's own format (state_dict + metadata), plain state_dicts, whole-model pickles.

Loading is safe by default; see load_model. The kinds of file it accepts:

- project: {"format": "seedling-xai/1", "state_dict", "meta"} written by save_checkpoint.
- state_dict: a plain state_dict, or a dict holding one ({"model_state_dict": ...}, {"state_dict": ...}, ...);
  the architecture comes from the arguments (config/flags); also .safetensors files.
- whole_model: `torch.save(model, ...)` of a model whose classes are all importable here, loaded with torch's
  weights-only unpickler and an allowlist of the nn.Module classes the pickle names (torch, torchvision, timm,
  segmentation_models_pytorch).
- recovered_whole_model: a whole-model pickle naming classes that are not importable here (e.g. an smp 0.3.x model
  whose se_resnext encoder came from `pretrainedmodels`), or that no longer fit the installed smp. Nothing of the
  pickle is run: its classes are replaced by inert stubs, the tensors are collected by module path, and the smp model
  the checkpoint (or the arguments) names is built and loaded strictly.
- trusted_pickle: anything else, only with trust_checkpoint=True (full unpickling: runs code from the file).
"""
from __future__ import annotations

import _compat_pickle
import enum
import hashlib
import importlib
import io
import pickle
import pickletools
import struct
import types
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from .errors import XAIError

FORMAT = "seedling-xai/1"
KINDS = ("project", "state_dict", "whole_model", "recovered_whole_model", "trusted_pickle")

# Packages whose classes a whole-model pickle may name. Classes of the first four load for real when importable;
# all of them may be replaced by inert stubs when they are not (old smp encoders came from pretrainedmodels and
# efficientnet_pytorch).
_MODEL_PACKAGES = ("torch", "torchvision", "timm", "segmentation_models_pytorch")
_STUB_PACKAGES = _MODEL_PACKAGES + ("pretrainedmodels", "efficientnet_pytorch")
# Parts of torch whose classes are never instantiated from a checkpoint without --trust_checkpoint (compiled/traced
# code, process and file machinery); their names are only ever stubbed.
_DENIED_PREFIXES = ("torch.jit", "torch.fx", "torch._dynamo", "torch._inductor", "torch._export", "torch.export",
                    "torch.distributed", "torch.multiprocessing", "torch.package", "torch.testing", "torch.utils",
                    "torch.hub", "torch.onnx", "torch.compiler", "torch._higher_order_ops", "torch._subclasses",
                    "torch._functorch", "torch.func", "torch.library", "torch._library", "torch.cuda", "torch.backends")
# Harmless data types that training scripts put beside the weights ({"epoch", "best_iou": np.float64, "args"}).
_DATA_GLOBALS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
                 "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype", "argparse.Namespace")
# Globals a pickle written by a newer Python may use for enum members; stubbed (never called) in recovery.
_STUB_ONLY_GLOBALS = ("builtins.getattr",)
_WRAPPED_STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "model_state", "weights",
                       "params", "ema_state_dict", "model_ema")
_SMP_ROOTS = ("encoder.", "decoder.", "segmentation_head.", "classification_head.")
_DROPPABLE_PREFIXES = ("encoder.fc.", "encoder.last_linear.", "encoder.classifier.", "encoder.head.")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_REFUSE = ("{path}: refusing to unpickle {name}: checkpoints run code when unpickled; "
           "pass --trust_checkpoint if you trust this file")


@dataclass
class LoadedModel:
    model: nn.Module
    kind: str
    arch: str | None
    encoder: str | None
    classes: list[str] | None
    num_classes: int
    img_size: tuple[int, ...] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    outputs_probabilities: bool
    sha256: str
    notes: list[str] = field(default_factory=list)
    activation: str | None = None


def save_checkpoint(path: str | Path, model: nn.Module, *, arch: str, encoder: str, classes: list[str],
                    img_size: tuple[int, int], activation: str | None = None,
                    mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                    extra: dict[str, Any] | None = None) -> None:
    """Write {'format', 'state_dict', 'meta'}: loadable with torch.load(weights_only=True)."""
    from .io import atomic_path

    meta = {
        "arch": arch,
        "encoder": encoder,
        "classes": list(classes),
        "img_size": [int(v) for v in img_size],
        "activation": activation,
        "mean": list(mean) if mean is not None else None,
        "std": list(std) if std is not None else None,
    }
    if extra:
        meta.update(extra)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, tmp)


# --------------------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------------------

def load_model(path: str | Path, *, arch: str | None = None, encoder: str | None = None,
               classes: Iterable[str] | None = None, activation: str | None = None,
               trust_checkpoint: bool = False, map_location: Any = "cpu") -> LoadedModel:
    """Load a segmentation model from any of the checkpoint kinds above; the model is in eval mode.

    arch/encoder/classes/activation are the config/flag values, used where the checkpoint does not say (plain
    state_dicts, recovered pickles). `classes` also checks the checkpoint's class count. The model is left on
    map_location's device (cpu by default); moving it is the caller's business.
    """
    path = Path(path)
    if not path.exists():
        raise XAIError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise XAIError(f"checkpoint {path} is not a file")
    try:
        digest = _sha256(path)
    except OSError as exc:
        raise XAIError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    ctx = _Ctx(path=path, arch=arch, encoder=encoder, activation=activation,
               classes=list(classes) if classes is not None else None, map_location=map_location,
               trust=trust_checkpoint, sha256=digest)
    loaded = _load(ctx)
    loaded.model.eval()
    return loaded


# --------------------------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------------------------

@dataclass
class _Ctx:
    path: Path
    arch: str | None
    encoder: str | None
    activation: str | None
    classes: list[str] | None
    map_location: Any
    trust: bool
    sha256: str
    notes: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load(ctx: _Ctx) -> LoadedModel:
    path = ctx.path
    with open(path, "rb") as fh:
        head = fh.read(16)
    if _looks_like_safetensors(path, head):
        return _from_state_dict(ctx, _read_safetensors(ctx), kind="state_dict")
    pickles = _read_pickles(path, head)
    uses: dict[str, set[str]] = {}
    try:
        for data in pickles:
            _scan_pickle(data, uses)
    except _Malformed as exc:
        raise _corrupt(path, exc) from None
    except _ScanError as exc:
        if not ctx.trust:
            raise XAIError(f"{path}: cannot vet this pickle ({exc}); "
                           "pass --trust_checkpoint if you trust this file") from None
        return _load_trusted(ctx)
    safe, stub, refused = _classify(uses)
    if refused:
        if not ctx.trust:
            raise XAIError(_REFUSE.format(path=path, name=", ".join(refused)))
        return _load_trusted(ctx)
    if stub:
        obj = _recover_unpickle(ctx, trust=False)
        shown = ", ".join(stub[:3]) + (f" (+{len(stub) - 3} more)" if len(stub) > 3 else "")
        ctx.notes.append(f"classes not loadable here were replaced by inert stubs: {shown}")
        return _interpret(ctx, obj, pickled_kind="recovered_whole_model")
    try:
        with torch.serialization.safe_globals(safe), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location=ctx.map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # Our vetting let it through but torch's weights-only unpickler did not: recover without running anything.
        obj = _recover_unpickle(ctx, trust=False)
        ctx.notes.append(f"torch's weights-only unpickler refused this file ({_weights_only_reason(exc)}); "
                         "tensors recovered by module path")
        return _interpret(ctx, obj, pickled_kind="recovered_whole_model")
    except Exception as exc:  # noqa: BLE001 - any failure here means a damaged file
        raise _corrupt(path, exc) from None
    return _interpret(ctx, obj, pickled_kind="whole_model")


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    if path.suffix == ".safetensors":
        return True
    if len(head) >= 9 and head[8:9] == b"{":
        (n,) = struct.unpack("<Q", head[:8])
        return 0 < n < path.stat().st_size
    return False


def _read_safetensors(ctx: _Ctx) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise XAIError(f"{ctx.path}: is a safetensors file, but the safetensors package is not installed") from None
    device = ctx.map_location if isinstance(ctx.map_location, str) else "cpu"
    try:
        return load_file(str(ctx.path), device=device)
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(ctx.path, exc) from None


def _read_pickles(path: Path, head: bytes) -> list[bytes]:
    """The pickle stream(s) of a torch checkpoint, for vetting before anything is unpickled."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in names):
                    raise XAIError(f"{path}: is a TorchScript archive (torch.jit.save), which this tool does not "
                                   "load; save the model with torch.save (whole model or state_dict) instead")
                data = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
                if not data:
                    raise XAIError(f"{path}: not a PyTorch checkpoint (a zip file without data.pkl)")
                return [zf.read(data[0])]
        except XAIError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on damaged archives
            raise _corrupt(path, exc) from None
    if head[:2] == b"PK":
        raise _corrupt(path, zipfile.BadZipFile("damaged zip archive"))
    # Legacy (pre-1.6) format: magic number, protocol, sys info, the object, storage keys; then raw storage bytes.
    try:
        raw = path.read_bytes()
        stream = io.BytesIO(raw)
        out = []
        for i in range(4):
            start = stream.tell()
            ops = list(pickletools.genops(stream))
            if i == 0 and not any(op.name in ("LONG1", "LONG4") and arg == _LEGACY_MAGIC for op, arg, _ in ops):
                raise ValueError("no torch magic number")
            out.append(raw[start:stream.tell()])
        return out[3:]
    except Exception as exc:  # noqa: BLE001
        raise XAIError(f"{path}: not a PyTorch checkpoint (or the file is truncated/corrupt): "
                       f"{_first_line(exc)}") from None


def _weights_only_reason(exc: BaseException) -> str:
    """The informative line of torch's long weights-only error message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            rest = ln.split("WeightsUnpickler error", 1)[1].lstrip(": ").strip()
            rest = rest or (lines[i + 1] if i + 1 < len(lines) else "")
            return rest[:120]
    return _first_line(exc)[:120]


def _corrupt(path: Path, exc: BaseException) -> XAIError:
    return XAIError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _load_trusted(ctx: _Ctx) -> LoadedModel:
    """--trust_checkpoint: full unpickling (runs code from the file); missing classes fall back to stubs."""
    try:
        obj = torch.load(ctx.path, map_location=ctx.map_location, weights_only=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        obj = _recover_unpickle(ctx, trust=True)
        ctx.notes.append(f"unpickled with --trust_checkpoint; classes missing here ({_first_line(exc)}) were "
                         "replaced by stubs")
        return _interpret(ctx, obj, pickled_kind="recovered_whole_model")
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(ctx.path, exc) from None
    ctx.notes.append("unpickled with --trust_checkpoint (full unpickling)")
    return _interpret(ctx, obj, pickled_kind="trusted_pickle")


# --------------------------------------------------------------------------------------------------------------
# Vetting the pickle: which globals it names, and how it uses them
# --------------------------------------------------------------------------------------------------------------

class _ScanError(Exception):
    """The pickle is well formed but does something the vetting cannot follow (computed names, extension codes)."""


class _Malformed(Exception):
    """The pickle stream is damaged."""


_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_INPLACE_OPS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS"}
_TUPLE_OPS = {"TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"}


def _scan_pickle(data: bytes, uses: dict[str, set[str]]) -> None:
    """Symbolically run the pickle's opcodes (never its code) and record, per global, how it is used.

    Uses: "new" (NEWOBJ: object created without calling its __init__), "call" (REDUCE/OBJ/INST, or passed as an
    argument of a call), "build" (target of BUILD/SETITEM: would set attributes on a class), "ref" (stored as data).
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def glob(name: str) -> tuple:
        uses.setdefault(name, set()).add("ref")
        return ("G", name)

    def use(token: Any, how: str) -> None:
        if isinstance(token, tuple) and token and token[0] == "G":
            uses[token[1]].add(how)

    def called_args(token: Any, depth: int = 0) -> None:
        if depth > 4:
            return
        if isinstance(token, tuple) and token:
            if token[0] == "G":
                use(token, "call")
            elif token[0] == "T":
                for item in token[1]:
                    called_args(item, depth + 1)

    def pop() -> Any:
        if not stack or (marks and len(stack) <= marks[-1]):
            raise _Malformed("stack underflow")
        return stack.pop()

    def pop_mark() -> list[Any]:
        if not marks:
            raise _Malformed("missing MARK")
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    try:
        ops = pickletools.genops(data)
        for op, arg, _pos in ops:
            name = op.name
            if name == "GLOBAL":
                mod, _, qual = str(arg).partition(" ")
                stack.append(glob(_py3_name(mod, qual)))
            elif name == "STACK_GLOBAL":
                qual, mod = pop(), pop()
                if not (isinstance(qual, tuple) and qual[0] == "S" and isinstance(mod, tuple) and mod[0] == "S"):
                    raise _ScanError("STACK_GLOBAL with computed names")
                stack.append(glob(f"{mod[1]}.{qual[1]}"))
            elif name == "INST":
                mod, _, qual = str(arg).partition(" ")
                items = pop_mark()
                token = glob(_py3_name(mod, qual))
                use(token, "call")
                for item in items:
                    called_args(item)
                stack.append(("O",))
            elif name == "OBJ":
                items = pop_mark()
                if not items:
                    raise _Malformed("empty OBJ")
                use(items[0], "call")
                for item in items[1:]:
                    called_args(item)
                stack.append(("O",))
            elif name in _STRING_OPS:
                stack.append(("S", arg))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise _Malformed("unknown memo entry")
                stack.append(memo[arg])
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "POP":
                if marks and len(stack) == marks[-1]:
                    marks.pop()
                else:
                    pop()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "REDUCE":
                args, func = pop(), pop()
                use(func, "call")
                called_args(args)
                stack.append(("O",))
            elif name == "NEWOBJ":
                args, cls = pop(), pop()
                use(cls, "new")
                called_args(args)
                stack.append(("O",))
            elif name == "NEWOBJ_EX":
                kwargs, args, cls = pop(), pop(), pop()
                use(cls, "new")
                called_args(args)
                called_args(kwargs)
                stack.append(("O",))
            elif name == "BUILD":
                pop()  # the state: its globals were recorded when pushed
                if not stack:
                    raise _Malformed("BUILD on empty stack")
                use(stack[-1], "build")
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise _ScanError("copyreg extension codes")
            elif name in ("PROTO", "FRAME"):
                pass
            elif name == "STOP":
                break
            elif name in ("PERSID", "BINPERSID"):
                if name == "BINPERSID":
                    pop()
                stack.append(("O",))
            elif name in _TUPLE_OPS:
                if name == "TUPLE":
                    items = pop_mark()
                else:
                    n = {"EMPTY_TUPLE": 0, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}[name]
                    items = [pop() for _ in range(n)][::-1]
                stack.append(("T", items))
            else:
                before, after = op.stack_before, op.stack_after
                if pickletools.markobject in before:
                    pop_mark()
                    n_pre = before.index(pickletools.markobject)
                else:
                    n_pre = len(before)
                popped = [pop() for _ in range(n_pre)][::-1]
                if name in _INPLACE_OPS:
                    use(popped[0], "build")
                    stack.append(popped[0])
                else:
                    stack.extend(("O",) for _ in after)
    except (_ScanError, _Malformed):
        raise
    except Exception as exc:  # noqa: BLE001 - pickletools' errors on damaged streams
        raise _Malformed(_first_line(exc)) from None


def _py3_name(module: str, name: str) -> str:
    """The Python 3 name of a global as pickle's fix_imports maps it (protocol 2 writes '__builtin__.set')."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _resolve(name: str) -> Any:
    """Import `name` ('pkg.mod.Qual.Name') if its module is importable; None when it is not."""
    parts = name.split(".")
    # The module is the longest importable prefix; qualnames may be dotted (nested classes).
    for cut in range(len(parts) - 1, 0, -1):
        mod, qual = ".".join(parts[:cut]), parts[cut:]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core is numpy._core's alias in numpy 2
                obj: Any = importlib.import_module(mod)
        except ImportError:
            continue
        except Exception:  # noqa: BLE001 - a broken optional module counts as missing
            return None
        try:
            for q in qual:
                obj = getattr(obj, q)
        except AttributeError:
            return None
        return obj
    return None


def _in_packages(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


# __new__ methods known to only record bookkeeping (smp's models inherit huggingface_hub's config capture).
_BENIGN_NEW = {"segmentation_models_pytorch.base.model.SegmentationModel.__new__",
               "huggingface_hub.hub_mixin.ModelHubMixin.__new__"}


def _benign_new(cls: type) -> bool:
    for klass in cls.__mro__:
        fn = klass.__dict__.get("__new__")
        if fn is None or klass is object:
            continue
        fn = getattr(fn, "__func__", fn)
        if f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}" not in _BENIGN_NEW:
            return False
    return True


def _plain_data_class(cls: type) -> bool:
    """A class whose instances are inert when made with cls.__new__ and filled with BUILD (no code of it runs)."""
    return (_benign_new(cls) and getattr(cls, "__del__", None) is None
            and getattr(cls, "__setstate__", None) in (None, getattr(object, "__setstate__", None),
                                                       nn.Module.__setstate__)
            and type(cls) is type)


def _classify(uses: Mapping[str, set[str]]) -> tuple[list[Any], list[str], list[str]]:
    """Split the pickle's non-default globals into (safe objects to allowlist, names to stub, names to refuse)."""
    from torch import _weights_only_unpickler as wou

    default = set(wou._get_allowed_globals())
    safe: list[Any] = []
    stub: list[str] = []
    refused: list[str] = []
    for name, how in uses.items():
        if name in default:
            if "build" in how:
                refused.append(name)
            continue
        if "build" in how:  # setting attributes on a class object: never legitimate
            refused.append(name)
            continue
        if name in _DATA_GLOBALS:
            obj = _resolve(name)
            if obj is None:
                stub.append(name)
            else:
                safe.append((obj, name) if not isinstance(obj, type) or f"{obj.__module__}.{obj.__qualname__}" != name
                            else obj)
            continue
        if name in _STUB_ONLY_GLOBALS:
            stub.append(name)
            continue
        if not _in_packages(name, _STUB_PACKAGES):
            refused.append(name)
            continue
        if not _in_packages(name, _MODEL_PACKAGES) or _in_packages(name, _DENIED_PREFIXES):
            stub.append(name)
            continue
        obj = _resolve(name)
        if not isinstance(obj, type):
            stub.append(name)  # missing here, or a function: never called, only stubbed
            continue
        called = "call" in how
        if issubclass(obj, enum.Enum) or (issubclass(obj, tuple) and hasattr(obj, "_fields")):
            ok = True
        elif issubclass(obj, nn.Module):
            ok = not called and _benign_new(obj) and getattr(obj, "__del__", None) is None
        else:
            ok = not called and _plain_data_class(obj)
        if ok:
            real = f"{obj.__module__}.{obj.__qualname__}"
            safe.append(obj if real == name else (obj, name))
        else:
            stub.append(name)
    if any(n.startswith("numpy.") for n in uses) and not refused:
        safe.extend(_numpy_dtype_classes())  # BUILD on np.dtype instances needs their concrete classes
    return safe, sorted(stub), sorted(refused)


def _numpy_dtype_classes() -> list[type]:
    try:
        import numpy.dtypes as npd
    except ImportError:
        return []
    return [getattr(npd, n) for n in dir(npd) if n.endswith("DType") and isinstance(getattr(npd, n), type)]


# --------------------------------------------------------------------------------------------------------------
# Recovery: unpickle with inert stubs, collect tensors by module path
# --------------------------------------------------------------------------------------------------------------

class _Stub:
    """Stands in for a class or function that is not loaded; records what the pickle gave it, runs nothing."""

    _stub_global = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        self = object.__new__(cls)
        object.__setattr__(self, "_stub_args", args)
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for part in state:
                if part:
                    self.__dict__.update({str(k): v for k, v in part.items()})
        elif isinstance(state, dict):
            self.__dict__.update({str(k): v for k, v in state.items()})
        else:
            self.__dict__["_stub_state"] = state

    def __call__(self, *args: Any, **kwargs: Any) -> "_Stub":
        return _stub_class("?")()

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_stub_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_stub_list", []).append(value)

    def extend(self, values: Iterable[Any]) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"<stub {self._stub_global}>"


def _stub_class(name: str) -> type:
    short = name.rpartition(".")[2] or "Stub"
    return type(short, (_Stub,), {"_stub_global": name, "__module__": __name__})


def _recover_unpickle(ctx: _Ctx, *, trust: bool) -> Any:
    """torch.load through a restricted unpickler: torch's tensor rebuilders are real, every other global a stub.

    Without trust, globals outside the allowed packages are refused (the vetting already did; this is a second
    line). With trust, importable globals load for real and only missing ones become stubs.
    """
    from torch import _weights_only_unpickler as wou

    allowed = wou._get_allowed_globals()
    stubs: dict[str, type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            full = _py3_name(module, name)
            if full in allowed:
                return allowed[full]
            if trust:
                obj = _resolve(full)
                if obj is not None:
                    return obj
            elif not (full in _DATA_GLOBALS or full in _STUB_ONLY_GLOBALS or _in_packages(full, _STUB_PACKAGES)):
                raise _Refused(full)
            if full not in stubs:
                stubs[full] = _stub_class(full)
            return stubs[full]

    restricted = types.ModuleType("seedling_restricted_pickle")
    restricted.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    restricted.load = lambda fh, **kw: RestrictedUnpickler(fh, **kw).load()  # type: ignore[attr-defined]
    restricted.__dict__["UnpicklingError"] = pickle.UnpicklingError
    try:
        with warnings.catch_warnings():
            # Legacy-format pickles compare each module's saved source with the installed one: stubs have none.
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code", category=UserWarning)
            warnings.filterwarnings("ignore", category=torch.serialization.SourceChangeWarning)
            return torch.load(ctx.path, map_location=ctx.map_location, weights_only=False, pickle_module=restricted)
    except _Refused as exc:
        raise XAIError(_REFUSE.format(path=ctx.path, name=exc.args[0])) from None
    except Exception as exc:  # noqa: BLE001
        raise _corrupt(ctx.path, exc) from None


class _Refused(Exception):
    pass


def _class_name(obj: Any) -> str:
    if isinstance(obj, _Stub):
        return obj._stub_global.rpartition(".")[2]
    return type(obj).__name__


def _module_like(obj: Any) -> bool:
    d = getattr(obj, "__dict__", None)
    return isinstance(obj, nn.Module) or (isinstance(d, dict) and isinstance(d.get("_modules"), Mapping)
                                          and isinstance(d.get("_parameters"), Mapping))


def _collect_state(root: Any) -> "OrderedDict[str, torch.Tensor]":
    """Parameters and persistent buffers by dotted module path, from real modules and stubs alike."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    active: set[int] = set()

    def visit(obj: Any, prefix: str) -> None:
        d = getattr(obj, "__dict__", None)
        if not isinstance(d, dict) or id(obj) in active:
            return
        active.add(id(obj))
        params = d.get("_parameters") or {}
        buffers = d.get("_buffers") or {}
        skip = d.get("_non_persistent_buffers_set") or set()
        for k, v in params.items():
            if isinstance(v, torch.Tensor):
                out[prefix + str(k)] = v.detach()
        for k, v in buffers.items():
            if isinstance(v, torch.Tensor) and k not in skip:
                out[prefix + str(k)] = v.detach()
        for k, m in (d.get("_modules") or {}).items():
            if m is not None:
                visit(m, f"{prefix}{k}.")
        active.discard(id(obj))

    visit(root, "")
    return out


def _child(obj: Any, name: str) -> Any:
    d = getattr(obj, "__dict__", None)
    mods = d.get("_modules") if isinstance(d, dict) else None
    return mods.get(name) if isinstance(mods, Mapping) else None


_ACTIVATION_NAMES = {"Identity": None, "Sigmoid": "sigmoid", "LogSoftmax": "logsoftmax", "Tanh": "tanh"}


def _head_activation(root: Any) -> tuple[bool, str | None]:
    """(found, smp activation name) read off a (stub or real) smp head: segmentation_head[-1](.activation)."""
    head = _child(root, "segmentation_head")
    mods = getattr(head, "__dict__", {}).get("_modules") if head is not None else None
    if not isinstance(mods, Mapping) or not mods:
        return False, None
    last = list(mods.values())[-1]
    inner = _child(last, "activation") if _class_name(last) == "Activation" else last
    if inner is None:
        return False, None
    cname = _class_name(inner)
    if cname in _ACTIVATION_NAMES:
        return True, _ACTIVATION_NAMES[cname]
    if cname == "Softmax":
        return True, "softmax2d" if getattr(inner, "__dict__", {}).get("dim") == 1 else "softmax"
    if cname == "ArgMax":
        return True, "argmax2d" if getattr(inner, "__dict__", {}).get("dim") == 1 else "argmax"
    if cname in ("Upsample", "UpsamplingBilinear2d", "Conv2d"):
        return True, None
    return False, None


def _canonical_arch(name: str | None) -> str | None:
    from .modeling import ARCHS

    if not name:
        return None
    for a in ARCHS:
        if a.lower() == name.lower():
            return a
    return None


# --------------------------------------------------------------------------------------------------------------
# Interpreting what was unpickled
# --------------------------------------------------------------------------------------------------------------

def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def _interpret(ctx: _Ctx, obj: Any, *, pickled_kind: str) -> LoadedModel:
    path = ctx.path
    if isinstance(obj, Mapping) and "format" in obj and isinstance(obj.get("format"), str) \
            and str(obj["format"]).startswith("seedling-xai/"):
        if obj["format"] != FORMAT:
            raise XAIError(f"{path}: checkpoint format {obj['format']} is not supported here (expected {FORMAT}); "
                           "it was written by a different version of this tool")
        return _from_project(ctx, obj)
    if _module_like(obj):
        return _from_module(ctx, obj, pickled_kind)
    if _is_state_dict(obj):
        return _from_state_dict(ctx, dict(obj), kind="state_dict")
    if isinstance(obj, Mapping):
        for key in _WRAPPED_STATE_KEYS:
            value = obj.get(key)
            if _is_state_dict(value):
                ctx.notes.append(f"weights read from the checkpoint's '{key}' entry")
                return _from_state_dict(ctx, dict(value), kind="state_dict")
            if _module_like(value):
                ctx.notes.append(f"model read from the checkpoint's '{key}' entry")
                return _from_module(ctx, value, pickled_kind)
        keys = ", ".join(sorted(map(str, obj))[:8])
        raise XAIError(f"{path}: holds a dict without model weights (keys: {keys}); expected a model, a state_dict "
                       "or a dict with 'model_state_dict'/'state_dict'")
    raise XAIError(f"{path}: holds a {type(obj).__name__}, not a model, a state_dict or a {FORMAT} checkpoint")


def _check_count(ctx: _Ctx, n: int) -> None:
    if ctx.classes is not None and len(ctx.classes) != n:
        raise XAIError(f"{ctx.path}: checkpoint has {n} output classes but the config lists {len(ctx.classes)}: "
                       f"{', '.join(ctx.classes)}")


def _result(ctx: _Ctx, model: nn.Module, kind: str, arch: str | None, encoder: str | None, n: int,
            activation: str | None, classes: list[str] | None = None, img_size: Any = None,
            mean: Any = None, std: Any = None) -> LoadedModel:
    from .modeling import outputs_probabilities

    model.eval()
    return LoadedModel(
        model=model, kind=kind, arch=arch, encoder=encoder,
        classes=list(classes) if classes is not None else (list(ctx.classes) if ctx.classes is not None else None),
        num_classes=int(n),
        img_size=tuple(int(v) for v in img_size) if img_size is not None else None,
        mean=tuple(float(v) for v in mean) if mean is not None else None,
        std=tuple(float(v) for v in std) if std is not None else None,
        outputs_probabilities=outputs_probabilities(model), sha256=ctx.sha256, notes=ctx.notes,
        activation=activation,
    )


def _from_project(ctx: _Ctx, obj: Mapping[str, Any]) -> LoadedModel:
    path = ctx.path
    meta = obj.get("meta")
    state = obj.get("state_dict")
    if not isinstance(meta, Mapping) or not _is_state_dict(state):
        raise XAIError(f"{path}: damaged {FORMAT} checkpoint (no meta or no state_dict)")
    try:
        arch, encoder = str(meta["arch"]), str(meta["encoder"])
        names = [str(c) for c in meta["classes"]]
    except (KeyError, TypeError):
        raise XAIError(f"{path}: damaged {FORMAT} checkpoint (meta lacks arch, encoder or classes)") from None
    _check_count(ctx, len(names))
    for what, given, saved in (("architecture", _canonical_arch(ctx.arch) or ctx.arch, arch),
                               ("encoder", ctx.encoder, encoder)):
        if given and given != saved:
            ctx.notes.append(f"{what} {saved} taken from the checkpoint (the config says {given})")
    if ctx.classes is not None and ctx.classes != names:
        ctx.notes.append(f"class names taken from the checkpoint: {', '.join(names)}")
    act = meta.get("activation")
    model = _build_for_state(ctx, arch, encoder, len(names), act, dict(state), meta.get("model_kwargs"))
    return _result(ctx, model, "project", arch, encoder, len(names), act, classes=names,
                   img_size=meta.get("img_size"), mean=meta.get("mean"), std=meta.get("std"))


def _from_state_dict(ctx: _Ctx, state: dict[str, torch.Tensor], *, kind: str) -> LoadedModel:
    path = ctx.path
    if not ctx.arch or not ctx.encoder:
        raise XAIError(f"{path}: holds only weights (a state_dict); name the architecture and encoder "
                       "(config keys arch and encoder)")
    state = _strip_prefixes(ctx, state)
    n = _state_classes(state)
    if n is None:
        if ctx.classes is None:
            raise XAIError(f"{path}: cannot tell the number of output classes from the weights; list the classes "
                           "in the config")
        n = len(ctx.classes)
    _check_count(ctx, n)
    arch = _canonical_arch(ctx.arch) or ctx.arch
    model = _build_for_state(ctx, arch, ctx.encoder, n, ctx.activation, state)
    return _result(ctx, model, kind, arch, ctx.encoder, n, ctx.activation)


_WRAPPERS = ("DataParallel", "DistributedDataParallel")


def _from_module(ctx: _Ctx, obj: Any, pickled_kind: str) -> LoadedModel:
    from .modeling import count_classes

    inner = _child(obj, "module")
    if _class_name(obj) in _WRAPPERS and _module_like(inner):
        ctx.notes.append(f"unwrapped the model from {_class_name(obj)}")
        obj = inner
    if isinstance(obj, nn.Module) and pickled_kind != "trusted_pickle":
        odd = _tampered(obj)
        if odd is not None:
            ctx.notes.append(f"the pickled model carries {odd}; rebuilt from its weights instead")
            return _rebuild_from_tree(ctx, obj)
    if isinstance(obj, nn.Module):
        obj.eval()
        trouble = _probe(obj)
        if trouble is None or (pickled_kind == "trusted_pickle" and _canonical_arch(type(obj).__name__) is None):
            if trouble is not None:
                ctx.notes.append(f"a test forward pass failed: {trouble}")
            n = count_classes(obj)
            if n is not None:
                _check_count(ctx, n)
            else:
                n = _last_conv_channels(obj)
                if ctx.classes is not None:
                    if n != len(ctx.classes):
                        ctx.notes.append(f"class count {len(ctx.classes)} taken from the config (the model has no "
                                         "smp segmentation head to read it from)")
                    n = len(ctx.classes)
                elif n is None:
                    raise XAIError(f"{ctx.path}: cannot tell the model's number of output classes; list the "
                                   "classes in the config")
            arch, encoder = _ckpt_arch_encoder(obj)
            found, act = _head_activation(obj)
            return _result(ctx, obj, pickled_kind, arch or type(obj).__name__, encoder, n, act if found else None)
        ctx.notes.append(f"the pickled model does not run with the installed packages ({trouble}); "
                         "rebuilt from its weights")
    return _rebuild_from_tree(ctx, obj)


def _rebuild_from_tree(ctx: _Ctx, root: Any) -> LoadedModel:
    path = ctx.path
    arch, encoder = _ckpt_arch_encoder(root)
    given_arch = _canonical_arch(ctx.arch) or ctx.arch
    if arch and given_arch and arch != given_arch:
        ctx.notes.append(f"architecture {arch} taken from the checkpoint (the config says {ctx.arch})")
    if encoder and ctx.encoder and encoder != ctx.encoder:
        ctx.notes.append(f"encoder {encoder} taken from the checkpoint (the config says {ctx.encoder})")
    arch, encoder = arch or given_arch, encoder or ctx.encoder
    if not arch or not encoder:
        raise XAIError(f"{path}: cannot tell which architecture/encoder this pickled model "
                       f"({_class_name(root)}) is; name them (config keys arch and encoder)")
    state = _collect_state(root)
    if not state:
        raise XAIError(f"{path}: the pickled model holds no weights")
    n = _state_classes(state)
    if n is None:
        if ctx.classes is None:
            raise XAIError(f"{path}: cannot tell the number of output classes; list the classes in the config")
        n = len(ctx.classes)
    _check_count(ctx, n)
    found, act = _head_activation(root)
    if found:
        if ctx.activation is not None and ctx.activation != act:
            ctx.notes.append(f"head activation {act} read from the checkpoint (the config says {ctx.activation})")
    else:
        act = ctx.activation
    model = _build_for_state(ctx, arch, encoder, n, act, state)
    ctx.notes.append(f"rebuilt as {arch}/{encoder} with {n} classes and head activation {act}")
    return _result(ctx, model, "recovered_whole_model", arch, encoder, n, act)


def _ckpt_arch_encoder(root: Any) -> tuple[str | None, str | None]:
    """What a pickled smp model says about itself: its class (FPN, Unet...) and its name ('fpn-<encoder>')."""
    arch = _canonical_arch(_class_name(root))
    name = getattr(root, "__dict__", {}).get("name")
    encoder = name.split("-", 1)[1] if isinstance(name, str) and "-" in name else None
    return arch, encoder


def _tampered(model: nn.Module) -> str | None:
    """Something a weights-only pickle of a plain model never holds: hooks, or methods replaced per instance.

    (With only allowlisted classes available these could at most call installed code, but a model that carries
    them is not run: it is rebuilt from its tensors.)
    """
    for name, m in model.named_modules():
        state = vars(m)
        for key, value in state.items():
            if key.endswith("_hooks") and isinstance(value, Mapping) and value:
                return f"hooks ({name or 'model'}.{key})"
            if not key.startswith("__") and callable(getattr(type(m), key, None)) \
                    and not isinstance(getattr(type(m), key), type) and key not in ("training",):
                return f"a replaced method ({name or 'model'}.{key})"
        for pname, p in list(state.get("_parameters", {}).items()) + list(state.get("_buffers", {}).items()):
            if isinstance(p, torch.Tensor) and getattr(p, "_backward_hooks", None):
                return f"tensor hooks ({name or 'model'}.{pname})"
    return None


def _probe(model: nn.Module) -> str | None:
    """Run a tiny forward pass; an AttributeError means the pickle does not fit the installed classes."""
    try:
        p = next(model.parameters())
    except StopIteration:
        return None
    in_ch = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    x = torch.zeros(1, in_ch, 64, 64, device=p.device, dtype=p.dtype)  # 32x32 trips GroupNorm at 1x1
    try:
        with torch.no_grad():
            model(x)
    except AttributeError as exc:
        return _first_line(exc)
    except Exception:  # noqa: BLE001 - other failures (input size rules...) say nothing about the pickle
        return None
    return None


def _last_conv_channels(model: nn.Module) -> int | None:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels) if convs else None


# --------------------------------------------------------------------------------------------------------------
# Building a model for a state_dict and loading it strictly
# --------------------------------------------------------------------------------------------------------------

def _strip_prefixes(ctx: _Ctx, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (DataParallel 'module.', torch.compile '_orig_mod.', Lightning 'model.').

    Only when every key shares the prefix and what remains looks like an smp model (encoder./decoder./...).
    """
    keys = list(state)
    if not keys or any(k.startswith(_SMP_ROOTS) for k in keys):
        return state
    stripped = keys
    for depth in range(1, 4):
        firsts = {k.split(".", 1)[0] for k in stripped}
        if len(firsts) != 1 or not all("." in k for k in stripped):
            return state
        stripped = [k.split(".", 1)[1] for k in stripped]
        if any(k.startswith(_SMP_ROOTS) for k in stripped):
            prefix = keys[0][: len(keys[0]) - len(stripped[0])]
            ctx.notes.append(f"stripped the key prefix '{prefix}'")
            return dict(zip(stripped, state.values()))
    return state


def _state_classes(state: Mapping[str, torch.Tensor]) -> int | None:
    w = state.get("segmentation_head.0.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() >= 1 else None


def _in_channels(state: Mapping[str, torch.Tensor]) -> int:
    for k, v in state.items():
        if k.startswith("encoder.") and v.dim() == 4:
            return int(v.shape[1])
    return 3


def _decoder_kwargs(arch: str, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Non-default decoder widths read off the weights' shapes (FPN and Unet)."""
    kw: dict[str, Any] = {}
    if arch == "FPN":
        p5 = state.get("decoder.p5.weight")
        seg = state.get("decoder.seg_blocks.0.block.0.block.0.weight")
        head = state.get("segmentation_head.0.weight")
        if p5 is not None and int(p5.shape[0]) != 256:
            kw["decoder_pyramid_channels"] = int(p5.shape[0])
        if seg is not None:
            if int(seg.shape[0]) != 128:
                kw["decoder_segmentation_channels"] = int(seg.shape[0])
            if head is not None and int(head.shape[1]) == 4 * int(seg.shape[0]):
                kw["decoder_merge_policy"] = "cat"
    elif arch == "Unet":
        chans = []
        while f"decoder.blocks.{len(chans)}.conv1.0.weight" in state:
            chans.append(int(state[f"decoder.blocks.{len(chans)}.conv1.0.weight"].shape[0]))
        if chans and tuple(chans) != (256, 128, 64, 32, 16):
            kw["decoder_channels"] = tuple(chans)
            if len(chans) != 5:
                kw["encoder_depth"] = len(chans)
    return kw


def _create(arch: str, encoder: str, n: int, activation: str | None, in_channels: int,
            kwargs: Mapping[str, Any]) -> nn.Module:
    from .modeling import build_model

    return build_model(arch, encoder, n, activation=activation, in_channels=in_channels, **kwargs)


def _build_for_state(ctx: _Ctx, arch: str, encoder: str, n: int, activation: str | None,
                     state: dict[str, torch.Tensor], extra_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    path = ctx.path
    state = _strip_prefixes(ctx, state)
    kwargs = dict(_decoder_kwargs(arch, state))
    if isinstance(extra_kwargs, Mapping):
        kwargs.update(extra_kwargs)
    try:
        model = _create(arch, encoder, n, activation, _in_channels(state), kwargs)
    except XAIError as exc:
        raise XAIError(f"{path}: {exc}") from None
    expected = model.state_dict()
    unexpected = [k for k in state if k not in expected]
    droppable = [k for k in unexpected if k.startswith(_DROPPABLE_PREFIXES)]
    if droppable:
        state = {k: v for k, v in state.items() if k not in droppable}
        ctx.notes.append(f"dropped {len(droppable)} unused encoder classifier weights "
                         f"({droppable[0].rsplit('.', 1)[0]}.*)")
        unexpected = [k for k in unexpected if k not in droppable]
    missing = [k for k in expected if k not in state]
    if missing and all(k.endswith("num_batches_tracked") for k in missing):
        for k in missing:
            state[k] = expected[k]
        ctx.notes.append(f"filled {len(missing)} BatchNorm num_batches_tracked counters the checkpoint lacks")
        missing = []
    shapes = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: checkpoint {tuple(state[k].shape)} vs model "
                         f"{tuple(expected[k].shape)})")
        raise XAIError(f"{path}: the weights do not fit {arch}/{encoder} with {n} classes: {'; '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise XAIError(f"{path}: the weights do not fit {arch}/{encoder}: {_first_line(exc)}") from None
    return model.eval()


__all__ = ["FORMAT", "KINDS", "LoadedModel", "load_model", "save_checkpoint"]
