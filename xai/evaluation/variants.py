"""Variants of engine settings evaluated side by side on the same samples (--variants).

Syntax: space-separated specs `method[:key=value[,key=value...]]`, for example

    scorecam:layer=encoder.layer4,baseline=zero scorecam:layer=decoder gradcam:layer=encoder.layer3
    scorecam:maps=100,select=random scorecam:maps=100,select=variance

A key is an option of the method's options dataclass, by its short key (layer, maps, select, batch,
...) or its name (xai.options); its value is read as the option declares (a number, a choice, `all` or
`none` for no limit). A key the method does not have is refused (Grad-CAM has no baseline). Keys left
out take the run's options. A variant's label is its spec as written, normalised
(`scorecam:layer=decoder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import XAIError
from ..methods import get_method
from ..options import Options


@dataclass(frozen=True)
class Variant:
    label: str
    method: str
    overrides: tuple[tuple[str, Any], ...]  # (option name, value)

    def options(self, base: Options) -> Options:
        """The run's options of this method (`base`) with this variant's overrides."""
        return base.replace(**dict(self.overrides))

    @property
    def _approximations(self) -> dict[str, bool]:
        """{option name: whether None means "no limit"} of the method's approximation settings."""
        options = get_method(self.method).options
        return {s.name: s.nullable for s in options.specs() if s.approximates}

    @property
    def fast(self) -> bool:
        """A fast approximation: it sets a limit among the approximation settings (maps=N)."""
        limits = self._approximations
        return any(v is not None and limits.get(k, False) for k, v in self.overrides)

    def full_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """What identifies the full counterpart of a fast variant: method and overrides without approximations."""
        return self.method, tuple(sorted((k, v) for k, v in self.overrides if k not in self._approximations))


def parse_variant(spec: str) -> Variant:
    """One spec, checked against the registry and the method's options."""
    method, _, rest = spec.strip().partition(":")
    info = get_method(method)
    options = info.options
    overrides: list[tuple[str, Any]] = []
    parts = []
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise XAIError(f"variant '{spec}': '{item}' is not key=value")
        declared = options.spec(key)
        if declared is None:
            keys = ", ".join(s.key for s in options.specs() if s.name != "progress")
            raise XAIError(f"variant '{spec}': {info.label} takes no '{key}'; its keys: {keys}")
        try:
            overrides.append((declared.name, declared.check(declared.parse(value))))
        except XAIError as exc:
            raise XAIError(f"variant '{spec}': {exc}") from None
        parts.append(f"{key}={value}")
    label = method + (":" + ",".join(parts) if parts else "")
    return Variant(label=label, method=method, overrides=tuple(overrides))


def parse_variants(specs: str | list[str] | tuple[str, ...]) -> list[Variant]:
    """Every spec of a space-separated string (or list); duplicate labels are refused."""
    items = specs.split() if isinstance(specs, str) else [s for spec in specs for s in spec.split()]
    variants = [parse_variant(s) for s in items]
    labels = [v.label for v in variants]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise XAIError(f"variant(s) given twice: {', '.join(dupes)}")
    return variants


def full_counterparts(variants: list[Variant]) -> dict[str, str]:
    """{fast variant label: label of the full variant with the same settings}, where one is listed."""
    full = {v.full_key(): v.label for v in variants if not v.fast}
    return {v.label: full[v.full_key()] for v in variants if v.fast and v.full_key() in full}
