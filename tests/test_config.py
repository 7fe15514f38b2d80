"""Configs: the packaged defaults (importlib.resources), a user's own file, overrides, clear errors."""

from __future__ import annotations

import pytest

from xai.config import load_config, packaged_configs
from xai.errors import XAIError


def test_packaged_configs_and_defaults():
    assert packaged_configs() == ["demo", "phenocyte", "phenocyte_scripts"]
    cfg = load_config()
    assert cfg.classes == ("background", "hypocotyl", "cotyledon", "root", "seed")  # the masks' ids
    assert cfg.encoder == "se_resnext50_32x4d" and cfg.img_size == (512, 256) and cfg.arch == "FPN"
    assert cfg.target_layer == "decoder" and cfg.data_root == "data/phenocyte_seg"
    demo = load_config("demo")
    assert demo.encoder == "resnet18" and demo.img_size == (128, 256) and demo.train["epochs"] == 6


def test_a_users_file_and_overrides(tmp_path):
    assert load_config(encoder="resnet34", img_size=[256, 128]).img_size == (256, 128)
    mine = tmp_path / "mine.yaml"
    mine.write_text("classes: [background, leaf]\npalette: {background: [0, 0, 0], leaf: [0, 200, 0]}\n")
    cfg = load_config(mine)
    assert cfg.classes == ("background", "leaf") and cfg.class_colors() == [(0, 0, 0), (0, 200, 0)]


@pytest.mark.parametrize(
    "text,message",
    [
        ("classes: [a, b]\npalette: {a: [0, 0, 0]}\n", "no colour for class"),
        ("encodr: resnet18\n", "unknown config key"),
        ("img_size: [512]\n", "two positive integers"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("classes: [a\n", "not valid YAML"),
    ],
)
def test_bad_files_are_one_line(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(XAIError, match=message) as err:
        load_config(bad)
    assert "\n" not in str(err.value)


def test_a_missing_file_names_the_packaged_ones(tmp_path):
    packaged = r"\(packaged configs: demo, phenocyte, phenocyte_scripts\)"
    with pytest.raises(XAIError, match=r"config file not found: .*nope.yaml " + packaged):
        load_config(tmp_path / "nope.yaml")
