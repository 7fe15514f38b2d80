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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .errors import XAIError
from .errors import option as flag

__all__ = ["REQUIRED", "OptionSpec", "Options", "jsonable", "option"]

T = TypeVar("T", bound="Options")
_KINDS = (bool, int, float, str)


REQUIRED: Any = dataclasses.MISSING  # the default of an option that must be given


def option(
    default: Any,
    help: str,
    *,
    factory: Callable[[], Any] | None = None,
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
    key: str | None = None,
    result: bool = True,
    cli: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
    null_words: tuple[str, ...] = ("none",),
    approximates: bool = False,
    flag: str | None = None,
    section: str | None = None,
    exclusive: str | None = None,
    metavar: str | tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field that declares an option.

    default: its value when not given (REQUIRED: none); factory: makes the default instead (a dict);
    help: one line for --help and the docs; choices: the values allowed (strings), or a function
    returning them (resolved when first asked); key: its short name in --variants (default: the field's
    name); result: False when it does not change the results (a batch size), so that a resumed run may
    change it; cli: False to keep it off the command line; minimum, maximum: the numbers allowed (each
    item's, for a tuple); null_words: texts read as None; approximates: a setting of a fast approximation
    (a variant differing from another only in such settings is compared with it); flag: the command-line
    name when it is not the field's (a switch that turns a True default off: "no_road", its help written
    for the switch); section: the --help group it is listed in; exclusive: the name of a group of flags
    of which at most one may be given; metavar: what --help shows for its value(s).

    A field annotated `tuple[T, ...]` takes one or more values, `tuple[T, T]` exactly two."""
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
        "flag": flag,
        "section": section,
        "exclusive": exclusive,
        "metavar": metavar,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"option": meta})
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
    flag: str  # the command-line name (--flag)
    section: str | None
    exclusive: str | None
    metavar: str | tuple[str, ...] | None
    count: int | None = None  # a tuple's length: N, -1 for one or more; None: a single value
    required: bool = False

    @property
    def switch(self) -> bool:
        """A flag without a value: it sets the opposite of the (boolean) default."""
        return self.kind is bool and self.count is None and isinstance(self.default, bool)

    def parse(self, text: str) -> Any:
        """The value a text means (--variants, the command line; one item of a tuple)."""
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
        """value, checked (an int given for a float made a float, a list a tuple); XAIError says what is wrong."""
        if value is None and self.nullable:
            return value
        if self.count is not None:
            return self._check_items(value)
        return self._check_one(value)

    def _check_items(self, value: Any) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
            raise XAIError(f"{flag(self.name)} must be a sequence of {self.kind.__name__}, got {value!r}")
        if self.count is not None and self.count > 0 and len(value) != self.count:
            what = " ".join(self.metavar) if isinstance(self.metavar, tuple) else self.kind.__name__
            raise XAIError(f"{flag(self.name)} takes {self.count} values ({what}), got {list(value)}")
        return tuple(self._check_one(v) for v in value)

    def _check_one(self, value: Any) -> Any:
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


def _tuple_items(annotation: Any) -> tuple[Any, int] | None:
    """(item annotation, count) of a `tuple[T, ...]` (count -1) or `tuple[T, T]` member of the annotation."""
    members = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    for member in members or (annotation,):
        if typing.get_origin(member) is tuple:
            args = typing.get_args(member)
            return (args[0], -1) if len(args) == 2 and args[1] is Ellipsis else (args[0], len(args))
    return None


def _default(f: dataclasses.Field) -> tuple[Any, bool]:
    """(the field's default, whether it is required)."""
    if f.default is not dataclasses.MISSING:
        return f.default, False
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory(), False
    return None, True


def _spec(f: dataclasses.Field, annotation: Any) -> OptionSpec:
    meta = f.metadata["option"]
    admitted = _types(annotation)
    items = _tuple_items(annotation)
    kinds = _types(items[0]) if items is not None else admitted
    kind = next((k for k in _KINDS if k in kinds), str)
    excluded = (*_KINDS, type(None), object, tuple) if items is not None else (*_KINDS, type(None), object)
    default, required = _default(f)
    choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
    return OptionSpec(
        name=f.name,
        default=default,
        help=meta["help"],
        kind=kind,
        nullable=type(None) in admitted,
        others=tuple(t for t in admitted if t not in excluded),
        choices=tuple(choices) if choices is not None else None,
        key=meta["key"] or f.name,
        result=meta["result"],
        cli=meta["cli"],
        minimum=meta["minimum"],
        maximum=meta["maximum"],
        null_words=meta["null_words"],
        approximates=meta["approximates"],
        flag=meta["flag"] or f.name,
        section=meta["section"],
        exclusive=meta["exclusive"],
        metavar=meta["metavar"],
        count=items[1] if items is not None else None,
        required=required,
    )


@functools.cache
def _specs(cls: Any) -> tuple[OptionSpec, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(_spec(f, hints[f.name]) for f in dataclasses.fields(cls) if "option" in f.metadata)


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

    PROFILES: named sets of values ({"paper": {"weights": "raw"}}) that `of_profile(name)` applies."""

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
    def declared_in(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of `values` that set an option of this class (None: not set)."""
        names = set(cls.names())
        return {k: v for k, v in values.items() if k in names and v is not None}

    @classmethod
    def of_profile(cls: type[T], name: str = "default") -> T:
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
