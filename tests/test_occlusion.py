"""Occlusion against its slow reference and captum's Occlusion; one sweep for every class; padding untouched."""

from __future__ import annotations

import pytest
import torch

import xai
from tests.explainer_reference import occlusion_reference
from tests.helpers import CountingModel, image_batch, tiny_convnet
from xai.errors import XAIError
from xai.methods.occlusion import patch_starts

TOL = 1e-4


def test_patch_positions_cover_every_pixel_up_to_the_far_edge():
    assert patch_starts(0, 10, 4, 2) == [0, 2, 4, 6]  # 6 + 4 = 10: flush already
    assert patch_starts(0, 11, 4, 3) == [0, 3, 6, 7]  # the last one flush with the edge
    assert patch_starts(5, 9, 4, 4) == [5]
    for start, end, p, s in [(0, 37, 8, 5), (3, 30, 7, 7), (0, 8, 8, 1)]:
        covered = set()
        for y in patch_starts(start, end, p, s):
            assert start <= y and y + p <= end
            covered |= set(range(y, y + p))
        assert covered == set(range(start, end))


@pytest.mark.parametrize("fill", ["mean", "zero", "black"])
def test_matches_the_reference_for_every_class_with_padding(fill):
    model = tiny_convnet(classes=3, seed=1)
    x = image_batch(1, 20, 26, seed=2)
    valid = torch.zeros(20, 26, dtype=torch.bool)
    valid[:17, :21] = True  # bottom and right padding
    x[:, :, ~valid] = 1.7
    cam = xai.Occlusion(model, patch_size=6, stride=4, occlusion_value=fill, batch_size=5, region="all")
    maps = cam(x, valid=valid[None])
    assert not cam.last.empty.any()
    mean = x[0][:, valid].mean(1)
    black = -torch.tensor(xai.Occlusion.Options().input_mean) / torch.tensor(xai.Occlusion.Options().input_std)
    fills = {"mean": mean, "zero": torch.zeros(3), "black": black}[fill]
    for c in range(3):
        region = valid  # region "all": every pixel of the photograph
        ref, raw = occlusion_reference(model, x, c, region, valid, 6, 4, fills.tolist())
        assert torch.allclose(maps[0, c], ref, atol=TOL), (fill, c, (maps[0, c] - ref).abs().max())
        assert torch.allclose(cam.last.raw[0, c], torch.relu(raw), atol=TOL * max(1.0, raw.abs().max().item()))


def test_agrees_with_captum_occlusion_for_one_class():
    from captum.attr import Occlusion as CaptumOcclusion

    model = tiny_convnet(classes=3, seed=4)
    x = image_batch(1, 22, 30, seed=5)  # (22 − 6) and (30 − 6) are multiples of the stride: the same windows
    with torch.no_grad():
        region = (model(x).argmax(1)[0] == 0).float()  # the class this model predicts

    def score(inp):
        return (torch.softmax(model(inp), 1)[:, 0] * region).sum((1, 2))

    theirs = CaptumOcclusion(score).attribute(x, sliding_window_shapes=(3, 6, 6), strides=(3, 4, 4), baselines=0.0)
    ours = xai.Occlusion(model, patch_size=6, stride=4, occlusion_value="zero")
    ours(x, classes=[0])
    # captum subtracts two float32 sums over ~660 pixels; ours sums the pixel-wise drop: equal to float32 rounding
    assert torch.allclose(ours.last.raw[0, 0], torch.relu(theirs[0, 0]), atol=1e-4 * float(theirs.abs().max()))
    assert float(torch.relu(theirs[0, 0]).max()) > 0.05  # not two empty maps
    assert torch.allclose(theirs[0, 0], theirs[0, 2])  # captum gives every channel the patch's value


def test_one_sweep_serves_every_class_in_bounded_chunks_and_padding_never_changes():
    seen: list[torch.Tensor] = []

    class Watch(CountingModel):
        def forward(self, x):
            seen.append(x.clone())
            return super().forward(x)

    model = Watch(tiny_convnet(classes=4))
    x = image_batch(2, 24, 24, seed=1)
    valid = torch.zeros(2, 24, 24, dtype=torch.bool)
    valid[:, :20, :] = True
    cam = xai.Occlusion(model, patch_size=8, stride=4, batch_size=7)
    cam(x, valid=valid)
    per_image = len(patch_starts(0, 20, 8, 4)) * len(patch_starts(0, 24, 8, 4))
    assert model.batches[0] == 2 and sum(model.batches[1:]) == 2 * per_image == cam.last.stats["patches"]
    assert max(model.batches[1:]) <= 7  # all 4 classes from this one sweep
    padding_rows = torch.cat([b[:, :, 20:] for b in seen[1:]])  # every occluded copy keeps its image's padding
    assert all(any(torch.equal(row, x[n, :, 20:]) for n in range(2)) for row in padding_rows)


def test_independent_of_the_batch_size():
    model = tiny_convnet(classes=3)
    x = image_batch(2, 16, 20, seed=3)
    maps = [xai.Occlusion(model, patch_size=5, stride=3, batch_size=b)(x) for b in (1, 4, 64)]
    assert torch.allclose(maps[0], maps[1], atol=1e-5) and torch.allclose(maps[0], maps[2], atol=1e-5)


def test_a_patch_larger_than_the_photograph_is_one_line():
    model = tiny_convnet(classes=3)
    valid = torch.zeros(1, 32, 32, dtype=torch.bool)
    valid[:, :20, :12] = True
    with pytest.raises(XAIError) as err:
        xai.Occlusion(model, patch_size=16)(image_batch(1, 32, 32), valid=valid)
    assert str(err.value) == "patch_size 16 is larger than the photograph (20×12 pixels at the model's input size)"
    assert err.value.cli_message().startswith("--patch_size 16 is larger")
    with pytest.raises(XAIError, match="stride must be at least 1"):
        xai.Occlusion(model, stride=0)
