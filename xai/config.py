"""Project configuration: a YAML file (configs/*.yaml) whose keys command-line flags override."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import XAIError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "phenocyte.yaml"

DEFAULT_CLASSES = ("background", "root", "hypocotyl", "cotyledon", "seed")
DEFAULT_PALETTE = {
    "background": (0, 0, 0),
    "root": (0, 255, 255),
    "hypocotyl": (0, 255, 0),
    "cotyledon": (255, 255, 0),
    "seed": (255, 0, 255),
}


@dataclass
class Config:
    classes: tuple[str, ...] = DEFAULT_CLASSES
    palette: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(DEFAULT_PALETTE))
    data_root: str = "data/phenocyte_seg"
    fallback_data_root: str | None = "data/demo"
    split_file: str = "dataset_split.csv"
    arch: str = "FPN"
    encoder: str = "se_resnext50_32x4d"
    img_size: tuple[int, int] = (512, 256)  # (width, height)
    target_layer: str | None = "encoder.layer4"
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_colors(self) -> list[tuple[int, int, int]]:
        """RGB colour of each class in class order (grey where the palette has none)."""
        return [tuple(self.palette.get(c, (128, 128, 128))) for c in self.classes]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes)
        d["img_size"] = list(self.img_size)
        d["palette"] = {k: list(v) for k, v in self.palette.items()}
        return d


def _coerce(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise XAIError(f"{source}: unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    out = dict(data)
    if "classes" in out:
        out["classes"] = tuple(str(c) for c in out["classes"])
    if "palette" in out:
        out["palette"] = {str(k): tuple(int(v) for v in rgb) for k, rgb in out["palette"].items()}
    if "img_size" in out:
        size = tuple(int(v) for v in out["img_size"])
        if len(size) != 2 or min(size) <= 0:
            raise XAIError(f"{source}: img_size must be two positive integers (width height), got {out['img_size']}")
        out["img_size"] = size
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Read a YAML config (default configs/phenocyte.yaml) and apply non-None overrides."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise XAIError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise XAIError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise XAIError(f"config file {path} must hold a mapping of keys")
    values = _coerce(data, str(path))
    values.update(_coerce({k: v for k, v in overrides.items() if v is not None}, "override"))
    cfg = Config(**values)
    missing = [c for c in cfg.classes if c not in cfg.palette]
    if missing:
        raise XAIError(f"{path}: palette has no colour for class(es) {', '.join(missing)}")
    return cfg
