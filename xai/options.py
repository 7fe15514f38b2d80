"""Options declared once: each method's options are one frozen dataclass whose fields say everything.

    @dataclass(frozen=True)
    class ScoreCAMOptions(CAMOptions):
        weights: str = option("centred", "channel weights: centred, raw or softmax", choices=WEIGHTINGS)
        batch_size: int = option(32, "masked images per forward pass", key="batch", minimum=1, result=False)

From the fields follow the validation (choices, minimum, type), the command-line flags (xai.cli), the
`--variants` keys (`key`, else the name) and how their values are read, the run's resume key (fields
with `result=True`: those that change the maps), the manifest (`describe()`), and the engine's
construction (`Method(model, options)`): nothing matches parameter names anywhere else.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import XAIError
from .errors import option as flag

__all__ = ["OptionSpec", "Options", "jsonable", "option"]

T = TypeVar("T", bound="Options")
_KINDS = (bool, int, float, str)


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    key: str | None = None,
    result: bool = True,
    cli: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
    null_words: tuple[str, ...] = ("none",),
    approximates: bool = False,
) -> Any:
    """A dataclass field that declares an option.

    help: one line for --help and the docs; choices: the values allowed (strings); key: its short name in
    --variants (default: the field's name); result: False when it does not change the maps (a batch
    size), so that a resumed run may change it; cli: False to keep it off the command line; minimum: the
    smallest number allowed; maximum: the largest; null_words: texts read as None; approximates: a setting of a fast
    approximation (a variant differing from another only in such settings is compared with it)."""
    meta = {
        "help": help,
        "choices": choices,
        "key": key,
        "result": result,
        "cli": cli,
        "minimum": minimum,
        "maximum": maximum,
        "null_words": null_words,
        "approximates": approximates,
    }
    return dataclasses.field(default=default, metadata={"option": meta})


@dataclass(frozen=True)
class OptionSpec:
    """One declared option: what the field's annotation and metadata say."""

    name: str
    default: Any
    help: str
    kind: type  # bool, int, float or str: how text is read
    nullable: bool
    others: tuple[type, ...]  # further types the annotation admits (a callable score, a module)
    choices: tuple[str, ...] | None
    key: str
    result: bool
    cli: bool
    minimum: float | None
    maximum: float | None
    null_words: tuple[str, ...]
    approximates: bool

    def parse(self, text: str) -> Any:
        """The value a text means (--variants, the command line)."""
        text = text.strip()
        if self.nullable and text.lower() in self.null_words:
            return None
        if self.kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise XAIError(f"{flag(self.name)} must be true or false, got '{text}'")
        try:
            return self.kind(text)
        except ValueError:
            what = "a whole number" if self.kind is int else "a number"
            raise XAIError(f"{flag(self.name)} must be {what}, got '{text}'") from None

    def check(self, value: Any) -> Any:
        """value, checked (and an int given for a float made a float); XAIError says what is wrong."""
        if value is None and self.nullable:
            return value
        if self.others and isinstance(value, self.others) and not isinstance(value, self.kind):
            return value
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise XAIError(f"{flag(self.name)} must be of type {self.kind.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise XAIError(f"unknown {flag(self.name)} '{value}': choose one of {', '.join(self.choices)}")
        if self.minimum is not None and typing.cast(float, value) < self.minimum:  # kind is int or float here
            shown = int(self.minimum) if float(self.minimum).is_integer() else self.minimum
            raise XAIError(f"{flag(self.name)} must be at least {shown}, got {value}")
        if self.maximum is not None and typing.cast(float, value) > self.maximum:
            shown = int(self.maximum) if float(self.maximum).is_integer() else self.maximum
            raise XAIError(f"{flag(self.name)} must be at most {shown}, got {value}")
        return value


def _types(annotation: Any) -> tuple[type, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(annotation) for t in _types(a))
    origin = typing.get_origin(annotation)
    if origin is not None:
        return (origin,)
    return (annotation,) if isinstance(annotation, type) else (object,)


@functools.cache
def _specs(cls: Any) -> tuple[OptionSpec, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("option")
        if meta is None:
            continue
        admitted = _types(hints[f.name])
        kind = next((k for k in _KINDS if k in admitted), str)
        others = tuple(t for t in admitted if t not in _KINDS and t is not type(None) and t is not object)
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(
            OptionSpec(
                name=f.name,
                default=default,
                help=meta["help"],
                kind=kind,
                nullable=type(None) in admitted,
                others=others,
                choices=meta["choices"],
                key=meta["key"] or f.name,
                result=meta["result"],
                cli=meta["cli"],
                minimum=meta["minimum"],
                maximum=meta["maximum"],
                null_words=meta["null_words"],
                approximates=meta["approximates"],
            )
        )
    return tuple(out)


def jsonable(value: Any) -> Any:
    """What a manifest or a resume key records of an option value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if callable(value):
        return "callable"
    return type(value).__name__


class Options:
    """Base of the frozen option dataclasses: checked on construction, described, keyed, replaced.

    PROFILES: named sets of values ({"paper": {"weights": "raw"}}) that `profile(name)` applies."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        for spec in self.specs():
            checked = spec.check(getattr(self, spec.name))
            object.__setattr__(self, spec.name, checked)

    @classmethod
    def specs(cls) -> tuple[OptionSpec, ...]:
        return _specs(cls)  # type: ignore[arg-type]  # classes are hashable

    @classmethod
    def names(cls) -> list[str]:
        return [s.name for s in cls.specs()]

    @classmethod
    def spec(cls, name_or_key: str) -> OptionSpec | None:
        """The option called `name_or_key`, by its name or its --variants key."""
        return next((s for s in cls.specs() if name_or_key in (s.name, s.key)), None)

    @classmethod
    def profile(cls: type[T], name: str = "default") -> T:
        """The options of a named profile ("default": the declared defaults)."""
        if name == "default":
            return cls()
        if name not in cls.PROFILES:
            known = ", ".join(["default", *cls.PROFILES])
            raise XAIError(f"unknown {flag('profile')} '{name}' for {cls.__name__}: choose one of {known}")
        return cls(**cls.PROFILES[name])

    def replace(self: T, **changes: Any) -> T:
        """A copy with `changes`; a name this class does not declare is refused with the known ones."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise XAIError(
                f"{type(self).__name__} has no option {', '.join(unknown)}; its options: {', '.join(self.names())}"
            )
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def describe(self) -> dict[str, Any]:
        """Every option's value (the manifest)."""
        return {s.name: jsonable(getattr(self, s.name)) for s in self.specs()}

    def result_key(self) -> dict[str, Any]:
        """The values of the options that change the maps (the resume key)."""
        return {s.name: jsonable(getattr(self, s.name)) for s in self.specs() if s.result}
