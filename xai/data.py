"""The users' data layout, mask decoding and the preprocessing these models were trained with.

Layout: <root>/images/<name>, <root>/masks/<stem>_mask.png, <root>/dataset_split.csv (img_name,set).
Preprocessing (`Preprocessing`, from the config): resize so the longest side is max(img_size) keeping the
aspect ratio, pad up to at least img_size (width, height) and to a multiple of 32, centred by default
(the researchers' albumentations pipeline), then normalise with the encoder's mean/std. `Letterbox`
keeps the geometry to map every result back onto the photograph.
"""

from __future__ import annotations

import csv
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .errors import SampleError, XAIError, first_line, option
from .labels import IGNORE

log = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLITS = ("train", "val", "test")
IMAGE_DIR, MASK_DIR = "images", "masks"
MASK_SUFFIX = "_mask.png"


INTERPOLATIONS = {
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
    "cubic": cv2.INTER_CUBIC,
}
PAD_POSITIONS = ("center", "top_left")


MAX_INPUT_SIDE = 16_384  # px: the largest side of the model's input any source (flag, config, checkpoint) may ask for


def check_input_size(size: Sequence[int], source: str) -> tuple[int, int]:
    """(width, height) of the model's input as `source` asks for it, refused in one line when it is not two
    whole numbers in 1..MAX_INPUT_SIDE (a checkpoint header is text anyone can edit: a bound before any
    photograph is read or any input is allocated)."""
    values: list[Any] = list(size) if isinstance(size, (list, tuple)) else [size]
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise XAIError(f"{source}: the input size must be two whole numbers (width height), got {values}")
    if not all(1 <= v <= MAX_INPUT_SIDE for v in values):
        raise XAIError(
            f"{source}: the input size {values[0]}x{values[1]} is outside 1..{MAX_INPUT_SIDE} px a side "
            f"(give a smaller {option('img_size')})"
        )
    return int(values[0]), int(values[1])


@dataclass(frozen=True)
class Preprocessing:
    """How a photograph becomes the model's input: resized so that its longest side is max(img_size)
    (`interpolation`: bilinear as albumentations' LongestMaxSize(interpolation=1), area, nearest, cubic;
    "area_linear": area when shrinking, bilinear when enlarging), padded with `pad_value` to at least
    img_size (width, height) and then to a multiple of `multiple` (1: none), placed at `pad_position`
    (center: as albumentations' PadIfNeeded, the extra half rounded down on top/left; top_left)."""

    interpolation: str = "bilinear"
    pad_position: str = "center"
    pad_value: int = 0
    multiple: int = 32

    def __post_init__(self) -> None:
        if self.interpolation not in (*INTERPOLATIONS, "area_linear"):
            known = ", ".join([*INTERPOLATIONS, "area_linear"])
            raise XAIError(f"unknown resize interpolation '{self.interpolation}': choose one of {known}")
        if self.pad_position not in PAD_POSITIONS:
            raise XAIError(f"unknown pad position '{self.pad_position}': choose one of {', '.join(PAD_POSITIONS)}")
        if int(self.multiple) < 1 or not 0 <= int(self.pad_value) <= 255:
            raise XAIError(f"pad multiple must be ≥ 1 and pad value in 0..255, got {self.multiple}, {self.pad_value}")

    def flag(self, shrinking: bool) -> int:
        if self.interpolation == "area_linear":
            return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return INTERPOLATIONS[self.interpolation]


@dataclass(frozen=True)
class Letterbox:
    """Geometry of resize-and-pad: the photograph (h, w) resized to resized_hw and placed at `offset`
    (top, left) inside the padded input padded_hw; every result maps back through it."""

    orig_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    preprocessing: Preprocessing = Preprocessing(pad_position="top_left")

    @classmethod
    def fit(
        cls, orig_hw: tuple[int, int], img_size: tuple[int, int], preprocessing: Preprocessing | None = None
    ) -> Letterbox:
        """img_size is (width, height) as on the command line."""
        pre = preprocessing or Preprocessing()
        h, w = orig_hw
        if h <= 0 or w <= 0:
            raise XAIError(f"image has an empty size {w}x{h}")
        scale = max(img_size) / max(h, w)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        ph = _round_up(max(rh, img_size[1]), pre.multiple)
        pw = _round_up(max(rw, img_size[0]), pre.multiple)
        offset = ((ph - rh) // 2, (pw - rw) // 2) if pre.pad_position == "center" else (0, 0)
        return cls((h, w), (rh, rw), (ph, pw), offset, pre)

    def as_array(self) -> np.ndarray:
        """The geometry as 8 integers (orig h, w, resized h, w, padded h, w, offset top, left), as stored
        in raw_maps/*.npz."""
        return np.array([*self.orig_hw, *self.resized_hw, *self.padded_hw, *self.offset], dtype=np.int64)

    @classmethod
    def from_array(cls, values: Sequence[int] | np.ndarray) -> Letterbox:
        v = [int(x) for x in values]
        if len(v) not in (6, 8):  # 6: files of earlier releases (top-left placement)
            raise XAIError(f"a letterbox geometry has 8 integers, got {len(v)}")
        offset = (v[6], v[7]) if len(v) == 8 else (0, 0)
        return cls((v[0], v[1]), (v[2], v[3]), (v[4], v[5]), offset)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): the rows and columns of the input that show the photograph."""
        top, left = self.offset
        return top, top + self.resized_hw[0], left, left + self.resized_hw[1]

    def valid(self) -> np.ndarray:
        """padded_h×padded_w bool: the pixels that show the photograph (not padding)."""
        mask = np.zeros(self.padded_hw, dtype=bool)
        top, bottom, left, right = self.box
        mask[top:bottom, left:right] = True
        return mask

    def to_original(self, arr: np.ndarray, nearest: bool = False) -> np.ndarray:
        """Crop the padding of a (padded_h, padded_w[, ch]) map and resize it to the photograph's size."""
        return self.to_size(arr, self.orig_hw, nearest)

    def to_size(self, arr: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
        """Crop the padding of a (padded_h, padded_w[, ch]) map and resize it to hw (the photograph's
        size, or a display copy's)."""
        top, bottom, left, right = self.box
        cropped = np.ascontiguousarray(arr[top:bottom, left:right])
        h, w = hw
        if (bottom - top, right - left) == (h, w):
            return cropped
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.resize(cropped, (w, h), interpolation=interp)

    def _place(self, resized: np.ndarray, fill: int) -> np.ndarray:
        out = np.full((*self.padded_hw, *resized.shape[2:]), fill, dtype=resized.dtype)
        top, bottom, left, right = self.box
        out[top:bottom, left:right] = resized
        return out

    def apply_image(self, rgb: np.ndarray) -> np.ndarray:
        """Resize and pad an HxWx3 uint8 image."""
        rh, rw = self.resized_hw
        flag = self.preprocessing.flag(shrinking=rh < rgb.shape[0])
        resized = rgb if (rh, rw) == rgb.shape[:2] else cv2.resize(rgb, (rw, rh), interpolation=flag)
        return self._place(resized, self.preprocessing.pad_value)

    def apply_mask(self, mask: np.ndarray, pad_value: int = 0) -> np.ndarray:
        """Resize (nearest) and pad an HxW class-id mask."""
        rh, rw = self.resized_hw
        resized = mask if (rh, rw) == mask.shape[:2] else cv2.resize(mask, (rw, rh), interpolation=cv2.INTER_NEAREST)
        return self._place(resized, pad_value)


def _round_up(v: int, multiple: int) -> int:
    return int(math.ceil(v / multiple) * multiple)


# Encoders whose ImageNet weights expect other statistics (smp 0.3's pretrained settings); all the
# others, se_resnext50_32x4d and the ResNets included, use ImageNet's mean/std on [0, 1] input.
_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
_DPN = ((124 / 255, 117 / 255, 104 / 255), (1 / (0.0167 * 255),) * 3)
_SPECIAL_NORMALIZATION = {
    "inceptionresnetv2": _HALF,
    "inceptionv4": _HALF,
    "xception": _HALF,
    "dpn68": _DPN,
    "dpn68b": _DPN,
    "dpn92": _DPN,
    "dpn98": _DPN,
    "dpn107": _DPN,
    "dpn131": _DPN,
}


def encoder_normalization(encoder: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std of an encoder's ImageNet weights, known offline (smp 0.6 would ask the HF hub)."""
    if encoder in _SPECIAL_NORMALIZATION:
        return _SPECIAL_NORMALIZATION[encoder]
    if encoder.startswith("tu-"):
        try:
            import timm

            cfg = timm.models.get_pretrained_cfg(encoder[3:])
            if cfg is not None and cfg.mean and cfg.std:
                return tuple(float(m) for m in cfg.mean), tuple(float(s) for s in cfg.std)
        except Exception:  # unknown to timm: ImageNet's
            pass
    return IMAGENET_MEAN, IMAGENET_STD


def normalize(rgb: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32, (x/255 - mean) / std."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (x - m) / s


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """3xHxW normalised tensor -> HxWx3 uint8."""
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    rgb = (x.detach().float().cpu() * s + m).clamp(0, 1).mul(255).round().byte()
    return rgb.permute(1, 2, 0).numpy()


def preprocess(
    rgb: np.ndarray,
    img_size: tuple[int, int],
    preprocessing: Preprocessing,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[Letterbox, torch.Tensor]:
    """A photograph (H×W×3 uint8) as the model's input: its letterbox and the normalised 3×H×W tensor."""
    box = Letterbox.fit((rgb.shape[0], rgb.shape[1]), img_size, preprocessing)
    return box, normalize(box.apply_image(rgb), mean, std)


def skipping_errors(load: Callable[[int], dict], index: int, name: str) -> dict:
    """load(index), or {'name', 'index', 'error'} for a sample that cannot be read, so a batch run goes on."""
    try:
        return load(index)
    except SampleError as exc:  # said to the user of a batch run: option names as flags
        return {"name": name, "index": index, "error": exc.cli_message()}
    except Exception as exc:
        return {"name": name, "index": index, "error": f"cannot read {name}: {first_line(exc, 240)}"}


DEFAULT_MAX_PIXELS = 400_000_000  # a 20000×20000 photograph; larger ones are skipped (--max_pixels)
_HEADER_LOCK = threading.Lock()


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it (Pillow), or None if it cannot say."""
    from PIL import Image

    with _HEADER_LOCK:  # Pillow's decompression-bomb limit is global: lifted for the header read only
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
        except Exception:  # not an image Pillow knows: OpenCV decides below
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def read_image(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a photograph as HxWx3 RGB uint8 (grey, RGBA, 16-bit, palette and CMYK files are converted).
    One over max_pixels is refused from its header, before any decoding (a SampleError: skipped)."""
    if not path.is_file():
        raise SampleError(f"image not found: {path}")
    if path.stat().st_size == 0:
        raise SampleError(f"image file is empty (0 bytes): {path}")
    size = image_size(path) if max_pixels is not None else None
    if size is not None and max_pixels is not None and size[0] * size[1] > max_pixels:
        raise SampleError(
            f"photograph {path} is {size[0]}×{size[1]} = {size[0] * size[1] / 1e6:.0f} MP, over the limit of "
            f"{max_pixels / 1e6:.0f} MP (⟨max_pixels⟩)"
        )
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SampleError(f"unreadable image (not an image, truncated, or a format OpenCV cannot decode): {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


_ROWS = 1024  # colour masks are decoded this many rows at a time (bounded temporaries for huge masks)


def decode_mask(
    raw: np.ndarray, palette: Sequence[tuple[int, int, int]], source: str = "mask", ignore_index: int | None = None
) -> np.ndarray:
    """Class ids (HxW uint8) from a single-channel id mask or an RGB colour mask; pixels labelled
    ignore_index become IGNORE (255).

    Colours map to ids through the palette (class order), never through the colours present in one
    file. A 3-channel mask whose channels are equal and all below the class count (or the ignore
    label) is read as ids; in a colour mask, the grey (v, v, v) of v = ignore_index (white for 255) is
    the ignore label unless the palette holds that colour. Temporaries stay within a few bytes per
    pixel (no 64-bit copies), so that a mask of a 16000×16000 photograph decodes in bounded memory.
    """
    n = len(palette)
    if raw.ndim == 3 and raw.shape[2] == 4:
        raw = raw[..., :3]
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[..., 0]
    if raw.ndim == 2:
        return _decode_ids(raw, n, source, ignore_index)
    if raw.ndim != 3 or raw.shape[2] != 3:
        raise SampleError(f"mask {source} has unsupported shape {raw.shape}")
    if np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 1], raw[..., 2]):
        grey = raw[..., 0]
        allowed = np.zeros(max(256, int(grey.max()) + 1), bool)
        allowed[:n] = True
        if ignore_index is not None:
            allowed[ignore_index] = True
        if allowed[grey].all():
            return _decode_ids(grey, n, source, ignore_index)
    lut = np.full(1 << 24, 254, np.uint8)  # packed RGB -> id; 254: not in the palette
    if ignore_index is not None:
        lut[(ignore_index << 16) | (ignore_index << 8) | ignore_index] = IGNORE
    for i, (r, g, b) in enumerate(palette):
        lut[(int(r) << 16) | (int(g) << 8) | int(b)] = i
    ids = np.empty(raw.shape[:2], np.uint8)
    for y in range(0, raw.shape[0], _ROWS):
        rows = raw[y : y + _ROWS].astype(np.uint32)
        keys = (rows[..., 0] << 16) | (rows[..., 1] << 8) | rows[..., 2]
        ids[y : y + _ROWS] = lut[keys]
        unknown = ids[y : y + _ROWS] == 254
        if unknown.any():
            key = int(keys[unknown][0])
            colour = ((key >> 16) & 255, (key >> 8) & 255, key & 255)
            raise SampleError(f"mask {source} has colour RGB{colour} that is not in the palette")
    return ids


def _decode_ids(raw: np.ndarray, n: int, source: str, ignore_index: int | None) -> np.ndarray:
    """An id mask (any integer dtype) as uint8 ids, ignore_index -> IGNORE; other ids ≥ n refused."""
    if raw.dtype.kind not in "ui":
        raise SampleError(f"mask {source} holds {raw.dtype} values, not class ids")
    top = int(raw.max(initial=0))
    if top < n and int(raw.min(initial=0)) >= 0:
        return raw.astype(np.uint8, copy=False)
    ignored = raw == ignore_index if ignore_index is not None else None
    bad = (raw >= n) | (raw < 0)
    if ignored is not None:
        bad &= ~ignored
    if bad.any():
        hint = f" (ignore_index is {ignore_index})" if ignore_index is not None else ""
        value = int(raw[bad].max())
        raise SampleError(f"mask {source} has class id {value}, but the config has {n} classes{hint}")
    ids = raw.astype(np.uint8)
    if ignored is not None:
        ids[ignored] = IGNORE
    return ids


def read_mask(path: Path, palette: Sequence[tuple[int, int, int]], ignore_index: int | None = None) -> np.ndarray:
    if not path.is_file():
        raise SampleError(f"mask not found: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise SampleError(f"unreadable mask: {path}")
    if raw.ndim == 3:
        raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB if raw.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return decode_mask(raw, palette, source=str(path), ignore_index=ignore_index)


def mask_path(root: Path, image_name: str) -> Path:
    return root / MASK_DIR / f"{Path(image_name).stem}{MASK_SUFFIX}"


def read_split(root: Path, split: str, split_file: str = "dataset_split.csv") -> list[str]:
    """Image names of one split, in file order.

    The file is CSV with the columns img_name and set (others are ignored; a UTF-8 byte-order mark,
    spaces around values and blank lines are fine). Rows without a name, rows of sets other than
    train/val/test and repeated names are left out, each kind said once on the log.
    """
    csv_path = _split_path(root, split, split_file)
    rows = _read_split_rows(csv_path, split)
    _warn_left_out(csv_path, split, rows)
    if not rows.names:
        raise XAIError(f"split '{split}' of {csv_path} has no images")
    return rows.names


@dataclass
class _SplitRows:
    """One split's rows of a split file: its names in file order, and the rows left out."""

    names: list[str] = field(default_factory=list)
    unnamed: list[int] = field(default_factory=list)  # line numbers of the rows without a name
    unknown: set[str] = field(default_factory=set)  # sets other than train/val/test ("(empty)": none)
    repeated: list[str] = field(default_factory=list)  # names of this split seen again


def _split_path(root: Path, split: str, split_file: str) -> Path:
    """The split file under root; an unknown split, a missing root or a missing file is refused."""
    if split not in SPLITS:
        raise XAIError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise XAIError(f"data root not found: {root}")
    csv_path = root / split_file
    if not csv_path.is_file():
        raise XAIError(f"split file not found: {csv_path}")
    return csv_path


def _read_split_rows(csv_path: Path, split: str) -> _SplitRows:
    """The rows of `split` (column names and values stripped); a file without the columns img_name and
    set, or that is not UTF-8 CSV, is refused."""
    rows = _SplitRows()
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [f.strip() for f in (reader.fieldnames or [])]
            if not {"img_name", "set"} <= set(columns):
                missing = sorted({"img_name", "set"} - set(columns))
                raise XAIError(
                    f"{csv_path} has no column {' or '.join(missing)} (it needs img_name,set; "
                    f"found {','.join(columns) or 'nothing'})"
                )
            reader.fieldnames = columns
            for row in reader:
                name, subset = (row.get("img_name") or "").strip(), (row.get("set") or "").strip()
                if not name:
                    rows.unnamed.append(reader.line_num)
                elif subset not in SPLITS:
                    rows.unknown.add(subset or "(empty)")
                elif subset == split:
                    if name in rows.names:
                        rows.repeated.append(name)
                    else:
                        rows.names.append(name)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise XAIError(f"{csv_path} is not a readable UTF-8 CSV file: {exc}") from None
    return rows


def _warn_left_out(csv_path: Path, split: str, rows: _SplitRows) -> None:
    """One warning per kind of row left out (the first five lines or names of each)."""
    if rows.unnamed:
        log.warning(
            "%s: %d row(s) without an image name ignored (line %s)",
            csv_path,
            len(rows.unnamed),
            ", ".join(map(str, rows.unnamed[:5])),
        )
    if rows.unknown:
        log.warning(
            "%s: rows of set(s) %s ignored (sets are %s)", csv_path, ", ".join(sorted(rows.unknown)), ", ".join(SPLITS)
        )
    if rows.repeated:
        log.warning(
            "%s: %d repeated row(s) of split '%s' explained once: %s",
            csv_path,
            len(rows.repeated),
            split,
            ", ".join(rows.repeated[:5]),
        )


class SegmentationDataset(torch.utils.data.Dataset):
    """One split of a dataset in the users' layout, preprocessed as at training time.

    Items are dicts: image (3xHxW float32), mask (HxW int64, padded with 0), name, index, letterbox,
    rgb (the original photograph) and gt (the original-size mask); pixels with the ignore label hold
    IGNORE (255) in both. With `skip_errors`, a sample that
    cannot be read yields {'name', 'index', 'error'} instead of raising, so a batch run can go on.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        palette: Sequence[tuple[int, int, int]],
        img_size: tuple[int, int],
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        split_file: str = "dataset_split.csv",
        names: Sequence[str] | None = None,
        skip_errors: bool = False,
        keep_original: bool = True,
        preprocessing: Preprocessing | None = None,
        ignore_index: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ):
        self.root = Path(root)
        self.split = split
        self.names = list(names) if names is not None else read_split(self.root, split, split_file)
        self.palette = [(int(c[0]), int(c[1]), int(c[2])) for c in palette]
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)
        self.skip_errors = skip_errors
        self.keep_original = keep_original
        self.preprocessing = preprocessing or Preprocessing()
        self.ignore_index = ignore_index
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> dict:
        name = self.names[index]
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise SampleError(f"image name {name!r} leaves the folder {self.root / IMAGE_DIR}")
        rgb = read_image(self.root / IMAGE_DIR / name, self.max_pixels)
        gt = read_mask(mask_path(self.root, name), self.palette, self.ignore_index)
        if gt.shape != rgb.shape[:2]:
            raise SampleError(
                f"mask {mask_path(self.root, name)} is {gt.shape[1]}x{gt.shape[0]} "
                f"but its image is {rgb.shape[1]}x{rgb.shape[0]}"
            )
        box, image = preprocess(rgb, self.img_size, self.preprocessing, self.mean, self.std)
        item = {
            "name": name,
            "index": index,
            "image": image,
            "mask": torch.from_numpy(box.apply_mask(gt).astype(np.int64)),
            "letterbox": box,
        }
        if self.keep_original:
            item["rgb"], item["gt"] = rgb, gt
        return item

    def source(self, index: int) -> str | None:
        """Where a sample came from, beyond its name: nothing (its name under root/images says it)."""
        return None

    def __getitem__(self, index: int) -> dict:
        if not self.skip_errors:
            return self.load(index)
        return skipping_errors(self.load, index, self.names[index])
