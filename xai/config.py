"""Project configuration: a YAML file whose keys command-line flags override.

The default configs ship inside the package (xai/configs/*.yaml, read through importlib.resources, so
they work from a wheel as from the checkout): `phenocyte` (the users' setup, the default) and `demo`.
A config is named by one of those names or by the path of a user's own YAML file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import XAIError

DEFAULT_CONFIG = "phenocyte"

# The mask ids of the phenocyte dataset: 1 stem (hypocotyl), 2 leaf (cotyledon), 3 root, 4 seed, as read
# from its masks by a second project on the same data and as the researchers' own uncertainty figure
# colours them (docs/data.md, "Class names"); the researchers' scripts list them as background, root,
# hypocotyl, cotyledon, seed (the packaged config phenocyte_scripts).
DEFAULT_CLASSES = ("background", "hypocotyl", "cotyledon", "root", "seed")
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
    target_layer: str | None = "decoder"
    ignore_index: int | None = 255  # mask id of unlabelled pixels (excluded like padding); None: every id is a class
    preprocessing: dict[str, Any] = field(default_factory=dict)  # xai.data.Preprocessing: {} is its defaults
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def preprocess(self) -> Any:
        """The preprocessing of this config (xai.data.Preprocessing)."""
        from .data import Preprocessing

        unknown = sorted(set(self.preprocessing) - {"interpolation", "pad_position", "pad_value", "multiple"})
        if unknown:
            raise XAIError(
                f"unknown preprocessing key(s) {', '.join(unknown)}: interpolation, pad_position, pad_value, multiple"
            )
        return Preprocessing(**self.preprocessing)

    def class_colors(self) -> list[tuple[int, int, int]]:
        """RGB colour of each class in class order (grey where the palette has none)."""
        colours = [self.palette.get(c, (128, 128, 128)) for c in self.classes]
        return [(int(r), int(g), int(b)) for r, g, b in colours]

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
    if out.get("ignore_index") is not None:
        value = int(out["ignore_index"])
        if not 0 <= value <= 255:
            raise XAIError(f"{source}: ignore_index must be a mask id in 0..255 (or null), got {out['ignore_index']}")
        out["ignore_index"] = value
    return out


def packaged_configs() -> list[str]:
    """Names of the configs that ship with the package."""
    folder = resources.files("xai.configs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _config_text(path: str | Path | None) -> tuple[str, str]:
    """(YAML text, where it came from) of a packaged config name or a file path."""
    name = DEFAULT_CONFIG if path is None else str(path)
    if name in packaged_configs():
        return resources.files("xai.configs").joinpath(f"{name}.yaml").read_text(encoding="utf-8"), f"{name} (packaged)"
    file = Path(name)
    if not file.is_file():
        raise XAIError(f"config file not found: {file} (packaged configs: {', '.join(packaged_configs())})")
    try:
        return file.read_text(encoding="utf-8"), str(file)
    except (OSError, UnicodeDecodeError) as exc:
        raise XAIError(f"cannot read config file {file}: {exc}") from None


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Read a config (a packaged name such as "demo", or a YAML file; default "phenocyte") and apply
    the non-None overrides."""
    text, path = _config_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise XAIError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise XAIError(f"config file {path} must hold a mapping of keys")
    values = _coerce(data, str(path))
    values.update(_coerce({k: v for k, v in overrides.items() if v is not None}, "override"))
    cfg = Config(**values)
    if cfg.ignore_index is not None and cfg.ignore_index < cfg.num_classes:
        raise XAIError(f"{path}: ignore_index {cfg.ignore_index} is a class id (classes 0..{cfg.num_classes - 1})")
    missing = [c for c in cfg.classes if c not in cfg.palette]
    if missing:
        raise XAIError(f"{path}: palette has no colour for class(es) {', '.join(missing)}")
    return cfg
