"""RISE against a RISE written from the paper, mask by mask; its masks; one sweep; seeded."""

from __future__ import annotations

import torch

import xai
from tests.explainer_reference import rise_reference
from tests.helpers import CountingModel, image_batch, tiny_convnet
from xai.methods.rise import rise_grids, rise_masks


def test_masks_are_shifted_bilinear_upsamplings_of_binary_grids():
    grids, shifts = rise_grids(50, (20, 30), cell=8, p=0.3, seed=1)
    assert grids.shape == (50, 1, 4, 5) and set(grids.unique().tolist()) <= {0.0, 1.0}
    assert abs(grids.mean().item() - 0.3) < 0.08 and shifts.min() >= 0 and shifts.max() < 8
    masks = rise_masks(grids, shifts, (20, 30), cell=8)
    assert masks.shape == (50, 20, 30) and masks.min() >= 0 and masks.max() <= 1
    up = torch.nn.functional.interpolate(grids[:1], size=(32, 40), mode="bilinear", align_corners=False)[0, 0]
    dy, dx = shifts[0].tolist()
    assert torch.allclose(masks[0], up[dy : dy + 20, dx : dx + 30])
    again, _ = rise_grids(50, (20, 30), cell=8, p=0.3, seed=1)
    assert torch.equal(again, grids) and not torch.equal(rise_grids(50, (20, 30), 8, 0.3, seed=2)[0], grids)


def test_matches_the_paper_written_out_mask_by_mask():
    model = tiny_convnet(classes=3, seed=2)
    x = image_batch(1, 18, 22, seed=3)
    valid = torch.zeros(18, 22, dtype=torch.bool)
    valid[:15, :] = True
    cam = xai.RISE(model, num_masks=40, cell_size=6, probability=0.4, seed=5, batch_size=9, region="all")
    maps = cam(x, valid=valid[None])
    assert not cam.last.empty.any()
    grids, shifts = rise_grids(40, (18, 22), 6, 0.4, 5)
    masks = list(rise_masks(grids, shifts, (18, 22), 6))
    for c in range(3):
        ref, raw = rise_reference(model, x, c, valid, valid, masks, 0.4)
        assert torch.allclose(maps[0, c], ref, atol=1e-4), (c, (maps[0, c] - ref).abs().max())
        assert torch.allclose(cam.last.raw[0, c], torch.relu(raw), rtol=1e-4, atol=1e-4)


def test_one_sweep_for_every_class_and_image_independent_of_batching():
    model = CountingModel(tiny_convnet(classes=4))
    x = image_batch(2, 16, 16, seed=4)
    maps = xai.RISE(model, num_masks=30, cell_size=4, batch_size=8)(x)
    assert model.batches[0] == 2 and sum(model.batches[1:]) == 60 and max(model.batches[1:]) <= 8
    alone = xai.RISE(tiny_convnet(classes=4), num_masks=30, cell_size=4, batch_size=64)(x[1:])
    assert torch.allclose(maps[1], alone[0], atol=1e-5)  # the same masks for every image, whatever the chunks
