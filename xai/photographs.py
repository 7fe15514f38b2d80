"""Photographs without masks (--images): files, folders and globs resolved to the photographs to explain,
read and preprocessed as the photographs of a split are (xai.data), without a mask or a split file.

    --images photos/                  the photographs in the folder (not in its subfolders), by name
    --images a.jpg b.png              these files
    --images 'photos/**/*.jpg'        a glob (quoted: expanded here; ** reaches into subfolders)

A photograph is a file whose suffix OpenCV reads (PHOTO_SUFFIXES, in any case). Files of a folder or a
glob that are not photographs, folders inside a folder, and files named that are not photographs are
skipped and listed (`Photographs.skipped`); hidden files (".name") are passed over as a glob passes them
over. A path that does not exist, a folder or a glob without any photograph is refused in one line; a
photograph given twice is explained once. A photograph that cannot be read is skipped when its turn
comes, as a split's unreadable photographs are.

Names are untrusted: a sample is shown by its file name (its path as found where two photographs share
a file name), with unprintable characters replaced by '?'; output files are named by the sample's
position (xai.pipeline.layout) and never by the photograph; its record keeps the path it came from.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import (
    DEFAULT_MAX_PIXELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    preprocess,
    read_image,
    skipping_errors,
)
from .errors import XAIError, option

__all__ = [
    "PHOTO_SUFFIXES",
    "PhotographArrays",
    "PhotographDataset",
    "Photographs",
    "Skipped",
    "find_photographs",
    "printable",
]

PHOTO_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".dib", ".webp")
PHOTO_SUFFIXES += (".jp2", ".pbm", ".pgm", ".ppm", ".pnm")
_GLOB = "*?["


def printable(text: str) -> str:
    """text with every character that is not printable (newlines, control and undecodable bytes) as '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def is_photograph(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_SUFFIXES


@dataclass(frozen=True)
class Skipped:
    """A file or folder of --images that is not explained, and why."""

    path: str
    reason: str

    def line(self) -> str:
        return f"{printable(self.path)}: {self.reason}"


@dataclass
class Photographs:
    """What --images resolved to: the photographs (paths and the names they are shown by) and what was
    skipped."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Each photograph's file name, or its path where two share a file name; printable."""
        base = [p.name for p in self.paths]
        return [printable(b if base.count(b) == 1 else str(p)) for b, p in zip(base, self.paths, strict=True)]

    def describe(self) -> dict[str, Any]:
        """The manifest's account (the paths given are its options.images): how many photographs they hold,
        what was skipped."""
        return {
            "photographs": len(self.paths),
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
        }


def _entries(folder: Path) -> list[Path]:
    """The visible entries of a folder, by name; an unreadable folder is refused."""
    try:
        return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    except OSError as exc:
        raise XAIError(
            f"{option('images')} {printable(str(folder))}: cannot list the folder ({exc.strerror})"
        ) from None


def _sort(found: Photographs, candidates: list[Path]) -> tuple[int, list[str]]:
    """Photographs of candidates added to found, the others skipped; (photographs added, names of the others)."""
    added, others = 0, []
    for path in candidates:
        if path.is_dir():
            found.skipped.append(Skipped(str(path), "a folder (not searched: give it, or a glob such as DIR/**/*.jpg)"))
            others.append(path.name)
        elif is_photograph(path):
            found.paths.append(path)
            added += 1
        else:
            found.skipped.append(Skipped(str(path), f"not a photograph ({path.suffix or 'no suffix'})"))
            others.append(path.name)
    return added, others


def _no_photograph(where: str, others: list[str]) -> XAIError:
    """One line: `where` (a folder, a glob's matches) has no photograph, with what it has instead."""
    shown = [printable(o) for o in others]
    detail = "it is empty" if not shown else f"only {len(shown)} other entr{'y' if len(shown) == 1 else 'ies'}: "
    detail += ", ".join(shown[:3]) + (", ..." if len(shown) > 3 else "")
    return XAIError(f"{option('images')} {where} ({detail})")


def _add(found: Photographs, text: str) -> None:
    """One PATH of --images: a file, a folder (its photographs) or a glob."""
    path = Path(text)
    shown = printable(text)
    if path.is_dir():
        added, others = _sort(found, _entries(path))
        if not added:
            raise _no_photograph(f"{shown}: no photograph in the folder", others)
    elif path.exists():
        _sort(found, [path])
    elif any(ch in text for ch in _GLOB):
        matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
        if not matches:
            raise XAIError(f"{option('images')} '{shown}' matches no file")
        added, others = _sort(found, matches)
        if not added:
            raise _no_photograph(f"'{shown}': no photograph among the files it matches", others)
    else:
        raise XAIError(f"{option('images')} {shown}: no such file or folder")


def find_photographs(given: Sequence[str]) -> Photographs:
    """The photographs of the PATHs of --images, in the order given (a folder's and a glob's by name), each
    once; XAIError (one line) for a missing path, a folder or glob without photographs, or none at all."""
    found = Photographs()
    for text in given:
        _add(found, text)
    seen: set[str] = set()
    unique = []
    for path in found.paths:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append(path)
    found.paths = unique
    if not found.paths:
        skipped = "; ".join(s.line() for s in found.skipped[:3])
        raise XAIError(f"no photograph among {option('images')} {' '.join(map(printable, given))} ({skipped})")
    return found


class PhotographDataset(torch.utils.data.Dataset):
    """Photographs without masks, preprocessed as a split's are (xai.data.SegmentationDataset): items are
    dicts name, index, image (3×H×W float32), letterbox, rgb (the photograph), source (its path), and mask
    and gt None; with `skip_errors` one that cannot be read yields {'name', 'index', 'error'}."""

    root = None  # no dataset root: the run key and the manifest say so
    split = None

    def __init__(
        self,
        photographs: Photographs,
        *,
        img_size: tuple[int, int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        preprocessing: Preprocessing | None = None,
        skip_errors: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        self.paths = list(photographs.paths)
        self.names = photographs.names
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)
        self.preprocessing = preprocessing or Preprocessing()
        self.skip_errors = skip_errors
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def source(self, index: int) -> str | None:
        """The path the photograph came from (its record keeps it)."""
        return str(self.paths[index])

    def read(self, index: int) -> np.ndarray:
        """The photograph (H×W×3 uint8 RGB)."""
        return read_image(self.paths[index], self.max_pixels)

    def load(self, index: int) -> dict[str, Any]:
        rgb = self.read(index)
        box, image = preprocess(rgb, self.img_size, self.preprocessing, self.mean, self.std)
        return {
            "name": self.names[index],
            "index": index,
            "image": image,
            "mask": None,
            "letterbox": box,
            "rgb": rgb,
            "gt": None,
            "source": self.source(index),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not self.skip_errors:
            return self.load(index)
        return {**skipping_errors(self.load, index, self.names[index]), "source": self.source(index)}


class PhotographArrays(PhotographDataset):
    """Photographs already in memory (xai.explain's arrays and PIL images, and the files it read), preprocessed
    as PhotographDataset's: `photographs` lists the files among them (its paths, for the manifest), `sources`
    each one's path or None."""

    def __init__(
        self,
        rgbs: Sequence[np.ndarray],
        names: Sequence[str],
        sources: Sequence[str | None],
        photographs: Photographs,
        **preprocessing: Any,
    ):
        super().__init__(photographs, **preprocessing)
        self.rgbs, self.names, self.sources = list(rgbs), list(names), list(sources)

    def __len__(self) -> int:
        return len(self.rgbs)

    def source(self, index: int) -> str | None:
        return self.sources[index]

    def read(self, index: int) -> np.ndarray:
        return self.rgbs[index]
