"""The HTML gallery (xai.gallery): escaping, relative links, paths outside the run refused."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np
import pytest

from xai.gallery import write_gallery

CLASSES = ["background", "root", "hypocotyl", "cotyledon", "seed"]


def _no_temporaries(folder: Path) -> None:
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name]
    assert leftovers == [], leftovers


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.urls.append(attrs["src"])
        elif tag == "a":
            self.urls.append(attrs["href"])
        elif tag in ("script", "link", "iframe"):
            self.scripts += 1


def _dummy_png(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.full((8, 8, 3), 200, np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    return path.as_posix()


def test_gallery(tmp_path):
    out = tmp_path / "run"
    evil = '<b>seed & "root"</b>.png'
    samples: list[dict[str, Any]] = []
    for k, name in enumerate(["plant 1.png", evil]):
        figs: dict[str, dict[str, str]] = {}
        for kind in ("tpfpfn", "scorecam", "gradcam"):
            figs[kind] = {}
            for c in ("root", "seed"):
                rel = f"figures/sample{k}/{kind}_{c}.png"
                _dummy_png(out / rel)
                figs[kind][c] = rel
        if k == 1:  # odd characters in a file name must still link correctly
            odd = "figures/sample1/odd #name?.png"
            _dummy_png(out / odd)
            figs["tpfpfn"]["root"] = odd
        comparison = f"figures/sample{k}/comparison.png"
        _dummy_png(out / comparison)
        samples.append(
            {
                "id": f"sample{k}",
                "name": name,
                "figures": figs,
                "sample_figures": {"comparison": comparison},
                "metrics": {"root": {"iou": 0.5, "dice": 2 / 3}, "seed": {"iou": None, "dice": None}},
            }
        )
    # an absolute path inside the folder is made relative
    samples[0]["figures"]["scorecam"]["seed"] = str(out / samples[0]["figures"]["scorecam"]["seed"])

    index = write_gallery(out, samples, CLASSES, title="Run <1>")
    assert index == out / "gallery.html" and index.is_file()
    text = index.read_text(encoding="utf-8")
    assert "<b>seed" not in text and "&lt;b&gt;seed &amp; &#34;root&#34;&lt;/b&gt;" in text  # jinja2 escapes " as &#34;
    assert "Run &lt;1&gt;" in text
    assert "0.500" in text and "0.667" in text

    parser = _Links()
    parser.feed(text)
    assert parser.scripts == 0  # self-contained: no scripts, stylesheets or frames
    assert len([u for u in parser.urls if not u.startswith("#")]) >= 2 * (3 * 2 * 2 + 2)
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
        if url.startswith("#"):
            assert f'id="{url[1:]}"' in text or url == "#top"
            continue
        assert (out / unquote(parts.path)).is_file(), url
    _no_temporaries(out)

    # the gallery keeps working when the folder is moved
    moved = tmp_path / "moved"
    os.rename(out, moved)
    for url in parser.urls:
        if not url.startswith("#"):
            assert (moved / unquote(url)).is_file()


def test_gallery_refuses_paths_outside(tmp_path):
    outside = tmp_path / "elsewhere.png"
    _dummy_png(outside)
    bad = [{"id": "s", "name": "s", "figures": {"tpfpfn": {"root": str(outside)}}}]
    with pytest.raises(ValueError):
        write_gallery(tmp_path / "run", bad, CLASSES)
    bad = [{"id": "s", "name": "s", "figures": {"tpfpfn": {"root": "../elsewhere.png"}}}]
    with pytest.raises(ValueError):
        write_gallery(tmp_path / "run", bad, CLASSES)
    assert not (tmp_path / "run" / "gallery.html").exists()
