"""The registry of methods: name -> class, label, family, options, output folder.

A method registers itself with the `register` decorator in its own module under xai/methods/; every
module of that package is imported on first use of the registry, so adding a method is one new file.
The CLIs (--methods and the flags of its options), the pipeline (engines, figure folders, summary
columns), --variants, the gallery and the reports read methods from here and nowhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..errors import XAIError

if TYPE_CHECKING:
    from ..options import Options
    from .base import Explainer

__all__ = ["MethodInfo", "get_method", "method_names", "methods", "register"]


@dataclass(frozen=True)
class MethodInfo:
    """name: the key on the command line and in file names; label: what figures and reports print;
    folder: where the method's heatmap figures go; family: cam, perturbation, attribution, ...;
    uses_gradients: needs autograd (not inference mode); options: its options dataclass."""

    name: str
    cls: type[Explainer]
    label: str
    folder: str
    family: str
    uses_gradients: bool

    @property
    def options(self) -> type[Options]:
        return self.cls.Options


_REGISTRY: dict[str, MethodInfo] = {}
_discovered = False
C = TypeVar("C", bound="type[Explainer]")


def register(name: str, *, label: str, folder: str | None = None) -> Callable[[C], C]:
    """Class decorator: make an Explainer subclass available as `name` (folder defaults to `<name>_maps`)."""
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"method name {name!r} must be a lower-case identifier (it is used in file names)")

    def decorate(cls: C) -> C:
        known = _REGISTRY.get(name)
        if known is not None and known.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"method name {name!r} is already registered by {known.cls.__qualname__}")
        cls.name, cls.label = name, label
        _REGISTRY[name] = MethodInfo(
            name, cls, label, folder or f"{name}_maps", str(cls.family), bool(cls.uses_gradients)
        )
        return cls

    return decorate


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(__package__ or "xai.methods")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    _discovered = True


def methods() -> dict[str, MethodInfo]:
    """Every registered method, in registration order."""
    _discover()
    return dict(_REGISTRY)


def method_names() -> list[str]:
    return list(methods())


def get_method(name: str) -> MethodInfo:
    """The method registered as `name`; an unknown name is refused with the known ones."""
    known = methods()
    if name not in known:
        raise XAIError(f"unknown method '{name}': choose one of {', '.join(known)}")
    return known[name]
