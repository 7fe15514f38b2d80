"""raw_maps/*.npz: the maps rounded to --map_dtype read back bit for bit; files of earlier releases load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from xai.data import Letterbox, Preprocessing
from xai.errors import XAIError
from xai.mapfile import MAP_DTYPES, MapFile, as_stored, check_map_dtype, load_maps, write_maps
from xai.pipeline import RunOptions, prepare

BOX = Letterbox.fit((30, 60), (64, 64))  # a 30×60 photograph in a 64×64 input: rows 32.. are padding
CLASSES = ["background", "leaf", "root"]


def _maps(seed: int = 0) -> torch.Tensor:
    """3×64×64 float32 maps in [0, 1] with exact 0 and 1, every uint8 half-step k + ½ and values near them."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(3, *BOX.padded_hw, generator=g)
    halves = ((torch.arange(256, dtype=torch.float32) + 0.5) / 255).clamp(max=1)
    maps[1, :4] = halves.view(4, 64)
    maps[2, :4] = torch.nextafter(halves, torch.tensor(0.0)).view(4, 64)
    maps[0, 0, 0], maps[0, 0, 1] = 0.0, 1.0
    return maps * torch.from_numpy(BOX.valid())  # 0 on padding


def _file(maps: np.ndarray, map_dtype: str) -> MapFile:
    h, w = BOX.padded_hw
    return MapFile(
        maps={"gradcam": maps},
        gt=np.zeros(BOX.orig_hw, np.uint8),
        pred_input=np.zeros((h, w), np.uint8),
        gt_input=np.zeros((h, w), np.uint8),
        letterbox=BOX,
        class_names=CLASSES,
        class_ids=[0, 1, 2],
        image_name="a.png",
        region="pred",
        map_dtype=map_dtype,
    )


def test_the_rounding_is_the_declared_formula():
    m = _maps()
    assert torch.equal(as_stored(m, "float16"), m.half().float())
    assert torch.equal(as_stored(m, "uint8"), torch.round(m * 255) / 255)
    assert torch.equal(as_stored(m, "float32"), m)
    for map_dtype in MAP_DTYPES:
        once = as_stored(m, map_dtype)
        assert once.dtype == torch.float32 and torch.equal(as_stored(once, map_dtype), once)  # idempotent
    steps = {"float16": 2.0**-12, "uint8": 0.5 / 255}  # half a step of the stored grid on [0, 1]
    for map_dtype, half_step in steps.items():
        error = (as_stored(m, map_dtype) - m).abs().max().item()
        assert 0 < error <= half_step * (1 + 1e-6), map_dtype


@pytest.mark.parametrize("map_dtype", MAP_DTYPES)
def test_the_file_reads_back_the_rounded_maps_bit_for_bit(tmp_path, map_dtype):
    rounded = as_stored(_maps(), map_dtype).numpy()
    path = tmp_path / "sample0.npz"
    write_maps(path, _file(rounded, map_dtype))
    with np.load(path) as raw:
        assert raw["gradcam"].dtype == np.dtype(map_dtype) and str(raw["map_dtype"]) == map_dtype
    saved = load_maps(path)
    assert saved.map_dtype == map_dtype and saved.maps["gradcam"].dtype == np.float32
    assert np.array_equal(saved.maps["gradcam"].view(np.uint32), rounded.view(np.uint32))
    photo = saved.on_photograph("gradcam")
    assert photo.dtype == np.float32 and photo.shape == (3, *BOX.orig_hw)
    assert photo.min() >= 0 and photo.max() <= 1


def test_every_uint8_code_reads_back_as_k_over_255_and_encodes_to_itself(tmp_path):
    codes = torch.arange(256, dtype=torch.float32)
    values = as_stored(codes / 255, "uint8")
    assert torch.equal(values, codes / 255)
    path = tmp_path / "codes.npz"
    maps = np.zeros((3, *BOX.padded_hw), np.float32)
    maps[0, :4] = values.view(4, 64).numpy()
    write_maps(path, _file(maps, "uint8"))
    with np.load(path) as raw:
        assert raw["gradcam"][0, :4].ravel().tolist() == list(range(256))


def test_a_float32_file_of_an_earlier_release_still_loads(tmp_path):
    """Earlier files: float32 maps, no map_dtype entry, and the prediction on the photograph."""
    maps = _maps().numpy()
    new = tmp_path / "new.npz"
    write_maps(new, _file(maps, "float32"))
    with np.load(new) as raw:
        arrays = {k: raw[k] for k in raw.files if k != "map_dtype"}
    old = tmp_path / "old.npz"
    np.savez_compressed(old, **arrays, pred=np.ones(BOX.orig_hw, np.uint8))
    saved = load_maps(old)
    assert saved.map_dtype == "float32" and np.array_equal(saved.maps["gradcam"], maps)
    assert saved.extra == {} and saved.pred.sum() == 30 * 60


def test_a_map_dtype_the_release_does_not_know_is_one_line(tmp_path):
    with pytest.raises(XAIError, match=r"^unknown map_dtype 'int4': choose one of float16, uint8, float32$"):
        check_map_dtype("int4")
    with pytest.raises(XAIError, match=r"^unknown map_dtype 'int4'"):  # the library's runs, before any loading
        prepare(RunOptions(model_path="absent.pth", map_dtype="int4", command=["t"]))
    path = tmp_path / "sample0.npz"
    write_maps(path, _file(_maps().numpy(), "float16"))
    with np.load(path) as raw:
        arrays = {k: raw[k] for k in raw.files}
    np.savez_compressed(path, **{**arrays, "map_dtype": np.array("uint8")})  # the entry contradicts the maps
    with pytest.raises(XAIError, match="the maps of gradcam are not uint8 as the file declares"):
        load_maps(path)
    np.savez_compressed(path, **{**arrays, "map_dtype": np.array("int4")})
    with pytest.raises(XAIError, match="stores its maps as 'int4', which this release does not read"):
        load_maps(path)


@pytest.mark.parametrize("placement", ["center", "top_left"])
def test_the_file_keeps_the_preprocessing_that_made_its_geometry(tmp_path, placement):
    pre = Preprocessing(interpolation="area", pad_position=placement)
    box = Letterbox.fit((30, 60), (64, 64), pre)
    path = tmp_path / "sample0.npz"
    file = dataclasses.replace(_file(np.zeros((3, *box.padded_hw), np.float32), "float32"), letterbox=box)
    write_maps(path, file)
    assert load_maps(path).letterbox == box  # its geometry and its preprocessing
    with np.load(path) as raw:  # a file of an earlier release: no preprocessing entry
        arrays = {k: raw[k] for k in raw.files if k != "preprocessing"}
    old = tmp_path / "old.npz"
    np.savez_compressed(old, **arrays)
    assert load_maps(old).letterbox.preprocessing.pad_position == placement  # what its offset shows
    assert load_maps(old).extra == {}
