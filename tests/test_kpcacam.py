"""KPCA-CAM against a pair-by-pair kernel PCA in numpy and against scikit-learn's KernelPCA (the peer
pytorch-grad-cam calls); FEM against a channel-by-channel k-sigma rule. Both class-agnostic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xai
import xai.methods.kpcacam as kpca
from tests.explainer_reference import fem_reference, kpca_reference
from tests.helpers import image_batch, tiny_fpn
from xai.maps import minmax

LAYER = "encoder.layer2"  # 8×4 cells of 128 channels at 64×32


def _activations(model, x, layer):
    store: dict[str, torch.Tensor] = {}
    h = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    h.remove()
    return store["a"]


def _up(L, size):
    return minmax(F.interpolate(L[None, None], size=size, mode="bilinear")[0, 0])


@pytest.mark.parametrize(
    "kernel,gamma", [("sigmoid", None), ("rbf", None), ("poly", 0.01), ("linear", None), ("cosine", None)]
)
def test_kpcacam_matches_the_reference(kernel, gamma):
    model, x = tiny_fpn(seed=3), image_batch(2, 64, 32, seed=1)
    maps = xai.KPCACAM(model, target_layer=LAYER, region="all", kpca_kernel=kernel, kpca_gamma=gamma)(x)
    acts = _activations(model, x, LAYER)
    for n in range(2):
        ref = _up(kpca_reference(acts[n], kernel, gamma), (64, 32))
        for c in range(5):
            assert torch.allclose(maps[n, c], ref, atol=1e-4), (kernel, n, c, (maps[n, c] - ref).abs().max())
    assert not xai.KPCACAM.class_specific


def test_kpcacam_is_scikit_learns_kernel_pca():
    from sklearn.decomposition import KernelPCA

    model, x = tiny_fpn(seed=3), image_batch(1, 64, 32, seed=1)
    maps = xai.KPCACAM(model, target_layer=LAYER, region="all")(x)
    a = _activations(model, x, LAYER)[0].numpy()
    rows = a.reshape(a.shape[0], -1).T
    p = KernelPCA(n_components=1, kernel="sigmoid").fit_transform(rows - rows.mean(axis=0))
    ref = _up(torch.from_numpy(np.maximum(p, 0).reshape(a.shape[1:])).float(), (64, 32))
    assert torch.allclose(maps[0, 0], ref, atol=1e-4), (maps[0, 0] - ref).abs().max()


def test_kpcacam_lobpcg_agrees_with_the_dense_eigendecomposition(monkeypatch):
    """Above DENSE_CELLS cells the top eigenvector comes from LOBPCG: the same map."""
    model, x = tiny_fpn(seed=3), image_batch(1, 64, 64, seed=1)
    dense = xai.KPCACAM(model, target_layer="encoder.layer1", region="all")(x)  # 16×16 cells
    monkeypatch.setattr(kpca, "DENSE_CELLS", 16)
    iterative = xai.KPCACAM(model, target_layer="encoder.layer1", region="all")(x)
    assert (dense - iterative).abs().max() < 1e-3


@pytest.mark.parametrize("k", [2.0, 0.5])
def test_fem_matches_the_reference(k):
    model, x = tiny_fpn(seed=3), image_batch(2, 64, 32, seed=1)
    maps = xai.FEM(model, target_layer=LAYER, region="all", fem_k=k)(x)
    acts = _activations(model, x, LAYER)
    for n in range(2):
        ref = _up(fem_reference(acts[n], k), (64, 32))
        for c in range(5):
            assert torch.allclose(maps[n, c], ref, atol=1e-4), (k, n, c, (maps[n, c] - ref).abs().max())
    assert not xai.FEM.class_specific
