"""What the class ids of a dataset look like, and whether they look like their names.

    seedling-xai inspect --data_root data/phenocyte_seg [--config phenocyte] [--output_dir inspect]
    python -m xai inspect ...        (the module: python -m xai.inspection)

Reads the masks of a dataset in the users' layout (every split, at most --max_images of them) and
prints, per class id, its name, its share of the pixels, in how many images it appears, its connected
components per image (8-connectivity; components under 4 pixels left out), and their shape: skeleton
length (pixels of the skeleton), mean width (area / skeleton length) and elongation (length / width),
medians over the components, measured with the mask scaled to at most 1024 pixels on its long side. It
writes inspect.json and a figure of a few samples coloured by id (inspect_samples.png).

For the phenocyte classes (background, hypocotyl, cotyledon, root, seed, in any order) it warns in one
line where the statistics contradict the names: the root should be the longest, thinnest structure,
the seed a small round one, and the cotyledons usually two components per seedling.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .config import Config, load_config
from .errors import SampleError, XAIError, exit_with_one_line, option

log = logging.getLogger(__name__)
PHENOCYTE = {"background", "hypocotyl", "cotyledon", "root", "seed"}
SHAPE_SIDE = 1024  # masks are measured at most this long on their long side
MIN_COMPONENT = 4


@dataclass
class ClassStats:
    """What one class id looks like over the inspected masks."""

    id: int
    name: str
    pixel_share: float = 0.0
    images: int = 0  # images in which it appears
    components_per_image: float = 0.0  # median over the images in which it appears
    skeleton_length: float = 0.0  # medians over its components
    mean_width: float = 0.0
    elongation: float = 0.0
    area: float = 0.0
    _components: list[tuple[float, float, float]] = field(default_factory=list, repr=False)
    _per_image: list[int] = field(default_factory=list, repr=False)


def _components(binary: np.ndarray) -> list[tuple[float, float, float]]:
    """(skeleton length, mean width, area) of each connected component of a mask."""
    from skimage.morphology import skeletonize

    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    out = []
    for k in range(1, count):
        area = float(stats[k, cv2.CC_STAT_AREA])
        if area < MIN_COMPONENT:
            continue
        x, y, w, h = (
            int(stats[k, i]) for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT)
        )
        crop = labels[y : y + h, x : x + w] == k
        length = max(1.0, float(skeletonize(crop).sum()))
        out.append((length, area / length, area))
    return out


def _scaled(mask: np.ndarray) -> np.ndarray:
    scale = SHAPE_SIDE / max(mask.shape)
    if scale >= 1:
        return mask
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    return cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def inspect_masks(masks: Sequence[np.ndarray], class_names: Sequence[str]) -> list[ClassStats]:
    """The statistics of every class id over masks of ids (H×W each)."""
    stats = [ClassStats(i, n) for i, n in enumerate(class_names)]
    total = 0
    counts = np.zeros(len(class_names), np.int64)
    for mask in masks:
        total += mask.size
        counts += np.bincount(mask.ravel(), minlength=len(class_names))[: len(class_names)]
        small = _scaled(mask)
        for s in stats[1:]:
            parts = _components(small == s.id)
            if parts:
                s.images += 1
                s._per_image.append(len(parts))
                s._components += parts
    for s in stats:
        s.pixel_share = float(counts[s.id] / max(total, 1))
        if s._components:
            length, width, area = np.median(np.asarray(s._components), axis=0)
            s.skeleton_length, s.mean_width, s.area = float(length), float(width), float(area)
            s.elongation = float(length / max(width, 1e-9))
            s.components_per_image = float(np.median(s._per_image))
    return stats


def name_warnings(stats: list[ClassStats]) -> list[str]:
    """One line per contradiction between the phenocyte names and the statistics (none for other names)."""
    names = {s.name: s for s in stats}
    if set(names) != PHENOCYTE:
        return []
    fg = [s for s in stats if s.name != "background" and s._components]
    warnings = []
    root, seed, leaves = names["root"], names["seed"], names["cotyledon"]
    if fg:
        longest = max(fg, key=lambda s: s.skeleton_length)
        most_elongated = max(fg, key=lambda s: s.elongation)
        if root is not longest or root is not most_elongated:
            like = longest if longest is not root else most_elongated
            warnings.append(
                f"the class named 'root' (id {root.id}) is not the longest, thinnest structure: id {like.id} "
                f"('{like.name}') is (skeleton {like.skeleton_length:.0f} px, elongation {like.elongation:.1f} "
                f"against {root.skeleton_length:.0f} px, {root.elongation:.1f})"
            )
    if seed._components and (seed.elongation > 3.0 or (root._components and seed.area >= root.area)):
        warnings.append(
            f"the class named 'seed' (id {seed.id}) is not a small round structure: median area {seed.area:.0f} px "
            f"(the root's {root.area:.0f} px), elongation {seed.elongation:.1f}"
        )
    if leaves._components and leaves.components_per_image < 1.5:
        warnings.append(
            f"the class named 'cotyledon' (id {leaves.id}) has {leaves.components_per_image:.0f} component(s) per "
            "image where seedlings usually show two leaves"
        )
    return [f"{w} - do the names follow the mask ids? (docs/data.md, 'Class names')" for w in warnings]


def _read(root: Path, cfg: Config, max_images: int) -> tuple[list[str], list[np.ndarray], list[str], int]:
    """(names, masks, problems, samples listed) of up to max_images samples, evenly spread over every
    split's list (train, val, test in order)."""
    from .data import SPLITS, mask_path, read_mask, read_split

    names: list[str] = []
    for split in SPLITS:
        try:
            names += [n for n in read_split(root, split, cfg.split_file) if n not in names]
        except XAIError as exc:
            if "has no images" not in str(exc):
                raise
    masks, problems, kept = [], [], []
    chosen = names if len(names) <= max_images else [names[int(i)] for i in np.linspace(0, len(names) - 1, max_images)]
    for name in chosen:
        try:
            masks.append(read_mask(mask_path(root, name), cfg.class_colors(), cfg.ignore_index))
            kept.append(name)
        except SampleError as exc:
            problems.append(str(exc))
    if not masks:
        raise XAIError(f"no readable mask in {root}: {problems[0] if problems else 'no images listed'}")
    return kept, masks, problems, len(names)


def _figure(root: Path, names: list[str], masks: list[np.ndarray], cfg: Config, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from .data import IMAGE_DIR, read_image
    from .figures import colorize_classes
    from .io import atomic_path

    show = list(range(min(4, len(names))))
    fig = Figure(figsize=(3.2 * len(show), 7.4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(show), squeeze=False)
    colors = cfg.class_colors()
    for col, k in enumerate(show):
        rgb = read_image(root / IMAGE_DIR / names[k])
        axes[0, col].imshow(rgb)
        axes[1, col].imshow(cv2.addWeighted(rgb, 0.35, colorize_classes(masks[k], colors), 0.65, 0))
        axes[0, col].set_title(names[k], fontsize=8)
        for ax in axes[:, col]:
            ax.set_axis_off()
    handles = [
        Patch(facecolor=(c[0] / 255, c[1] / 255, c[2] / 255), edgecolor="0.5", label=f"{i}: {n}")
        for i, (n, c) in enumerate(zip(cfg.classes, colors, strict=True))
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"{root}: mask ids and the config's names", fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")


def inspect_dataset(
    root: str | Path, config: str | None = None, out: str | Path | None = None, max_images: int = 200
) -> dict[str, Any]:
    """Statistics, warnings and (with out) inspect.json and inspect_samples.png of a dataset."""
    cfg = load_config(config)
    root = Path(root)
    if not root.is_dir():
        raise XAIError(f"data root not found: {root}")
    if max_images < 1:
        raise XAIError(f"{option('max_images')} must be at least 1, got {max_images}")
    names, masks, problems, listed = _read(root, cfg, max_images)
    stats = inspect_masks(masks, cfg.classes)
    result = {
        "data_root": str(root),
        "config": config or "phenocyte",
        "images": len(masks),
        "listed": listed,
        "unreadable": problems,
        "classes": [{k: v for k, v in asdict(s).items() if not k.startswith("_")} for s in stats],
        "warnings": name_warnings(stats),
    }
    if out is not None:
        from .io import write_json

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "inspect.json", result)
        _figure(root, names, masks, cfg, folder / "inspect_samples.png")
    return result


def format_table(result: dict[str, Any]) -> str:
    shown = result["images"]
    listed = result.get("listed", shown)
    of = f" of {listed} listed (--max_images, evenly spread)" if listed > shown else ""
    rows = [f"{result['data_root']}: {shown} mask(s){of}"]
    rows.append(
        f"{'id':>2}  {'name':<11}{'pixels':>8}{'images':>8}{'comp/img':>9}{'skeleton':>9}{'width':>7}{'elong.':>7}"
    )
    for c in result["classes"]:
        if c["id"] == 0:  # background: its pixel share only (its shape is not measured)
            rows.append(
                f"{0:>2}  {c['name']:<11}{100 * c['pixel_share']:>7.2f}%{'-':>8}{'-':>9}{'-':>9}{'-':>7}{'-':>7}"
            )
            continue
        rows.append(
            f"{c['id']:>2}  {c['name']:<11}{100 * c['pixel_share']:>7.2f}%{c['images']:>8}"
            f"{c['components_per_image']:>9.1f}{c['skeleton_length']:>9.0f}{c['mean_width']:>7.1f}{c['elongation']:>7.1f}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import add_version_flag

    ap = argparse.ArgumentParser(prog="seedling-xai inspect", description=__doc__.splitlines()[0])
    ap.add_argument("--data_root", default=None, help="dataset folder (default: the config's data_root)")
    ap.add_argument("--config", default=None, help="a packaged config (phenocyte, demo, ...) or a YAML file")
    ap.add_argument("--output_dir", default="inspect", help="where inspect.json and inspect_samples.png go")
    ap.add_argument("--max_images", type=int, default=200, help="inspect at most N masks (every split)")
    add_version_flag(ap)
    args = ap.parse_args(argv)
    root = args.data_root or load_config(args.config).data_root
    result = inspect_dataset(root, args.config, args.output_dir, args.max_images)
    print(format_table(result))
    for problem in result["unreadable"]:
        print(f"skipped: {problem}")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(f"wrote {Path(args.output_dir) / 'inspect.json'} and {Path(args.output_dir) / 'inspect_samples.png'}")
    return 0


if __name__ == "__main__":
    exit_with_one_line(main)
