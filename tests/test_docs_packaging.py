"""The release files tell the truth: README's images exist, CITATION.cff and CHANGELOG.md follow pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _project() -> dict[str, str]:
    """The one-line string keys of pyproject.toml's [project] table (tomllib is Python 3.11+; 3.10 is supported)."""
    table = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([a-z-]+) = "([^"]*)"', table, re.MULTILINE))


PROJECT = _project()

# ![alt](target "title") and <img src="target">: the targets of README's images
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)


def _images(markdown: str) -> list[str]:
    return _MARKDOWN_IMAGE.findall(markdown) + _HTML_IMAGE.findall(markdown)


def test_readme_is_the_long_description_and_each_of_its_images_exists():
    """README.md is the package's long description. Its images are absolute URLs or paths of files in the
    repository (they show on the repository's page; an index such as PyPI would need absolute URLs)."""
    assert PROJECT["readme"] == "README.md"
    images = _images((ROOT / "README.md").read_text(encoding="utf-8"))
    for target in images:
        url = urlparse(target)
        if url.scheme:
            assert url.scheme == "https" and url.netloc, target
            continue
        path = (ROOT / url.path).resolve()
        assert path.is_relative_to(ROOT) and path.is_file(), f"README.md shows {target}, which is not in the repository"


def test_the_image_links_are_found_in_both_notations():
    text = '![a](docs/a.jpg) ![b](<docs/b.png> "t") <img alt="c" src="https://example.org/c.png" width=3>'
    assert _images(text) == ["docs/a.jpg", "docs/b.png", "https://example.org/c.png"]


def test_citation_cff_has_the_required_keys_and_the_version_and_licence_of_pyproject():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert {"cff-version", "message", "title", "authors"} <= set(cff)
    assert cff["title"] == PROJECT["name"] and cff["type"] == "software"
    assert str(cff["version"]) == PROJECT["version"]
    assert cff["license"] == PROJECT["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert cff["authors"] == [{"name": "The seedling-xai developers"}]
    for ref in cff["references"]:
        assert {"type", "title", "authors"} <= set(ref), ref
        assert all("name" in a or "family-names" in a for a in ref["authors"]), ref["title"]
    titles = " ".join(ref["title"] for ref in cff["references"])
    for method in ("Score-CAM", "Grad-CAM", "RISE", "Attribution Methods", "Segmentation Models Pytorch"):
        assert method in titles, method


def test_changelog_has_unreleased_and_the_version_of_pyproject():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "https://keepachangelog.com/en/1.1.0/" in text
    versions = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, re.MULTILINE)
    assert versions[0] == ("Unreleased", ""), versions[:1]
    assert (PROJECT["version"], versions[1][1]) == versions[1] and versions[1][1], "the newest release is pyproject's"
    assert all(date for _, date in versions[1:]), "every release has a date"
