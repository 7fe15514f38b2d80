"""Variants of engine settings evaluated side by side on the same samples (--variants).

Syntax: space-separated specs `method[:key=value[,key=value...]]`, for example

    scorecam:layer=encoder.layer4,baseline=zero scorecam:layer=decoder gradcam:layer=encoder.layer3
    scorecam:maps=100,select=random scorecam:maps=100,select=variance

Keys: layer (target layer), baseline (zero|none), weights (raw|softmax|centred), maps (max_activation_maps: a
number, or all), select (channel selection), score (prob|logit), precision, seed, batch (batch size).
A key the method does not take is refused (Grad-CAM has no baseline). Keys left out take the run's
options. A variant's label is its spec as written, normalised (`scorecam:layer=decoder`).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from ..errors import XAIError
from ..methods import get_method

KEYS = {
    "layer": "target_layer",
    "baseline": "baseline",
    "weights": "weights",
    "maps": "max_activation_maps",
    "select": "channel_selection",
    "score": "score",
    "precision": "precision",
    "seed": "seed",
    "batch": "batch_size",
}
_INTS = {"max_activation_maps", "seed", "batch_size"}
_FAST = ("max_activation_maps", "channel_selection", "seed")  # what makes a fast variant of a full one


@dataclass(frozen=True)
class Variant:
    label: str
    method: str
    overrides: tuple[tuple[str, Any], ...]  # (RunOptions field, value)

    def options(self, base: Any) -> Any:
        """The run's options with this variant's overrides (a RunOptions-like dataclass)."""
        return dataclasses.replace(base, **dict(self.overrides))

    @property
    def fast(self) -> bool:
        return dict(self.overrides).get("max_activation_maps") is not None

    def full_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """What identifies the full counterpart of a fast variant: method and overrides without channel limits."""
        return self.method, tuple(sorted((k, v) for k, v in self.overrides if k not in _FAST))


def parse_variant(spec: str) -> Variant:
    """One spec, checked against the registry and the method's constructor."""
    method, _, rest = spec.strip().partition(":")
    info = get_method(method)
    accepted = set(inspect.signature(info.cls.__init__).parameters)
    overrides: list[tuple[str, Any]] = []
    parts = []
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not value:
            raise XAIError(f"variant '{spec}': '{item}' is not key=value")
        if key not in KEYS:
            raise XAIError(f"variant '{spec}': unknown key '{key}'; known keys: {', '.join(KEYS)}")
        field = KEYS[key]
        if field not in accepted:
            raise XAIError(f"variant '{spec}': {info.label} takes no '{key}'")
        parsed: Any = value
        if field in _INTS:
            if field == "max_activation_maps" and value.lower() in ("all", "none"):
                parsed = None
            else:
                try:
                    parsed = int(value)
                except ValueError:
                    raise XAIError(f"variant '{spec}': {key} must be a whole number, got '{value}'") from None
        overrides.append((field, parsed))
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
