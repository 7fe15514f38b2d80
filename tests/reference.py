"""Slow, obviously correct references written from the formulas: per image, per class, per channel, fp32.

They share no code with xai: activations come from a plain forward hook, gradients from autograd on the
real activation tensor (retain_grad), and each formula is written out channel by channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _acts_and_output(model, x, layer_name):
    layer = dict(model.named_modules())[layer_name]
    store: dict[str, torch.Tensor] = {}
    h = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        out = model(x)
    finally:
        h.remove()
    return store["a"], out


def _probs(out, score, model_has_activation):
    if score == "logit" or model_has_activation:
        return out
    return torch.softmax(out, dim=1)


def _region(pred, gt, c, region):
    if region == "all":
        return torch.ones_like(pred, dtype=torch.float32)
    p = pred == c
    if region == "pred":
        return p.float()
    g = gt == c
    return {"gt": g, "tp": g & p, "fp": p & ~g, "fn": g & ~p}[region].float()


def _logits_of(model, x):
    """The input of the final activation of an smp head (its logits)."""
    act = model.segmentation_head[-1]
    store: dict[str, torch.Tensor] = {}
    h = act.register_forward_hook(lambda m, i, o: store.__setitem__("z", i[0]))
    try:
        model(x)
    finally:
        h.remove()
    return store["z"]


def _scored_output(model, x, score, has_act):
    if score == "logit" and has_act:
        return _logits_of(model, x)
    return model(x)


def _minmax(t):
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)


def _up(t, size):
    return F.interpolate(t[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


@torch.no_grad()
def scorecam_reference(
    model,
    x,
    layer,
    cls,
    *,
    score="prob",
    region="pred",
    baseline="zero",
    weights="centred",
    gt=None,
    has_act=False,
    channels=None,
    copies=None,
):
    """L_c for one image x (1×3×H×W): Up(ReLU(Σ_k w_k A_k)), w_k = s(f(x⊙H_k)) − s(f(0)) (raw; softmax or
    centred over the measured channels, centred by default as the library's). copies(H_k): the masks M_i
    whose scores are averaged instead, w_k = mean_i s(f(x⊙M_i)) − s(f(0)) (SS-CAM, IS-CAM). Returns (min-max
    scaled map, raw map)."""
    model.eval()
    H, W = x.shape[-2:]
    acts, out = _acts_and_output(model, x, layer)
    pred = out.argmax(1)[0]
    R = _region(pred, None if gt is None else gt[0], cls, region)
    if R.sum() == 0:  # s_c ≡ 0: nothing to explain (softmax of all-zero w would otherwise be uniform)
        return torch.zeros(H, W), torch.zeros(H, W)

    def s(inp):  # summed in float64, so that w = s − s_b is exact to fp32 rounding of P
        P = _probs(_scored_output(model, inp, score, has_act), score, has_act)
        return (P[0, cls].double() * R.double()).sum()

    sb = s(torch.zeros_like(x)) if baseline == "zero" else torch.tensor(0.0, dtype=torch.float64)
    K = acts.shape[1]
    ks = range(K) if channels is None else channels
    w = torch.zeros(K)
    used = torch.zeros(K, dtype=torch.bool)
    for k in ks:
        up = _up(acts[0, k], (H, W))
        if up.max() == up.min():
            continue
        Hk = (up - up.min()) / (up.max() - up.min())
        masks = [Hk] if copies is None else copies(Hk)
        w[k] = float(sum(s(x * M) for M in masks) / len(masks) - sb)
        used[k] = True
    if weights == "softmax":
        z = torch.full((K,), float("-inf"))
        z[used] = w[used]
        w = torch.softmax(z, 0) if used.any() else torch.zeros(K)
    elif weights == "centred":  # w_k − mean of w over the measured channels; 0 for the others
        w = torch.where(used, w - w[used].mean(), torch.zeros(K)) if used.any() else torch.zeros(K)
    combo = torch.zeros(acts.shape[-2:])
    for k in range(K):
        combo += w[k] * acts[0, k]
    L = _up(torch.relu(combo), (H, W))
    return _minmax(L), L


def sscam_copies(n, sigma, seed, size):
    """SS-CAM's masks for scorecam_reference: M_i = H_k + δ_i, i = 1..n, δ_i ~ N(0, σ²) as the library documents
    its draw (n×1×H×W from a CPU generator seeded `seed`, times σ), the same δ_i for every channel."""
    noise = torch.randn(n, 1, *size, generator=torch.Generator().manual_seed(seed)) * sigma
    return lambda Hk: [Hk + noise[i, 0] for i in range(n)]


def iscam_copies(n, path="linear"):
    """IS-CAM's masks for scorecam_reference: α_i H_k, α_i = i/n (linear) or Σ_{j=1..i} j/n (cumulative)."""
    alphas = [i / n if path == "linear" else sum(j / n for j in range(1, i + 1)) for i in range(1, n + 1)]
    return lambda Hk: [a * Hk for a in alphas]


def _gradients(model, x, layer, cls, score, region, gt, has_act):
    """(A, ∂s_c/∂A) for one image and class: autograd on the real activation tensor, one forward pass."""
    model.eval()
    store = {}

    def keep_activation(m, i, o):
        o.retain_grad()
        store["a"] = o

    hooks = [dict(model.named_modules())[layer].register_forward_hook(keep_activation)]
    if score == "logit" and has_act:  # the logits entering the head's activation, from the same pass
        hooks.append(model.segmentation_head[-1].register_forward_hook(lambda m, i, o: store.__setitem__("z", i[0])))
    try:
        with torch.enable_grad():
            out = model(x)
            P = _probs(store.get("z", out), score, has_act)
            R = _region(out.argmax(1)[0], None if gt is None else gt[0], cls, region)
            s = (P[0, cls] * R).sum()
            model.zero_grad(set_to_none=True)
            if s.requires_grad:
                s.backward()
    finally:
        for h in hooks:
            h.remove()
    a = store["a"]
    g = a.grad if a.grad is not None else torch.zeros_like(a)
    return a[0].detach(), g[0].detach()


def gradient_cam_reference(model, x, layer, cls, method, *, score="prob", region="pred", gt=None, has_act=False):
    """minmax(Up(ReLU(L))) for one image and class, L from the method's formula, channel by channel:
    gradcam Σ_k mean(g_k) A_k; gradcam_elementwise Σ_k ReLU(g_k ⊙ A_k); gradcampp Σ_k (Σ_ij α_ij ReLU(g_k,ij)) A_k with
    α = g²/(2g² + Σ_ab A_k,ab · g³) where g > 0; hirescam Σ_k g_k ⊙ A_k; layercam Σ_k ReLU(g_k) ⊙ A_k;
    xgradcam Σ_k (Σ_ij A_k,ij / Σ_ab A_k,ab · g_k,ij) A_k."""
    H, W = x.shape[-2:]
    A, G = _gradients(model, x, layer, cls, score, region, gt, has_act)
    L = torch.zeros(A.shape[-2:])
    for k in range(A.shape[0]):
        a, g = A[k], G[k]
        if method == "gradcam":
            L += g.mean() * a
        elif method == "gradcampp":
            w = 0.0
            for i in range(g.shape[0]):
                for j in range(g.shape[1]):
                    if g[i, j] > 0:  # α = g² / (2g² + Σ_ab A_ab g³); ReLU(g) = 0 elsewhere
                        alpha = g[i, j] ** 2 / (2 * g[i, j] ** 2 + a.sum() * g[i, j] ** 3)
                        w = w + alpha * g[i, j]
            L += w * a
        elif method == "hirescam":
            L += g * a
        elif method == "layercam":
            L += torch.relu(g) * a
        elif method == "gradcam_elementwise":
            L += torch.relu(g * a)
        elif method == "xgradcam":
            total = a.sum()
            w = sum(a[i, j] / total * g[i, j] for i in range(a.shape[0]) for j in range(a.shape[1])) if total else 0
            L += w * a
        else:
            raise ValueError(method)
    return _minmax(_up(torch.relu(L), (H, W)))


def gradcam_reference(model, x, layer, cls, **kw):
    return gradient_cam_reference(model, x, layer, cls, "gradcam", **kw)


# The option grid every gradient method is checked on: (score, region, head activation).
GRADIENT_GRID = [
    ("prob", "pred", None),
    ("logit", "all", None),
    ("prob", "fn", None),
    ("logit", "gt", "sigmoid"),
    ("prob", "tp", "sigmoid"),
]


def assert_gradient_method_matches(cls, method, score, region, activation, layer="encoder.layer3", tol=1e-4):
    """cls on a tiny seeded FPN, 2 images × 5 classes from one call, against gradient_cam_reference."""
    from tests.helpers import gt_batch, image_batch, tiny_fpn

    model = tiny_fpn(activation=activation, seed=2)
    x, gt = image_batch(2, 64, 32, seed=3), gt_batch(2, 64, 32, seed=4)
    cam = cls(model, target_layer=layer, score=score, region=region)
    maps = cam(x, gt=gt)
    assert maps.shape == (2, 5, 64, 32)
    for n in range(2):
        for c in range(5):
            ref = gradient_cam_reference(
                model,
                x[n : n + 1],
                layer,
                c,
                method,
                score=score,
                region=region,
                gt=gt[n : n + 1],
                has_act=activation is not None,
            )
            assert torch.allclose(maps[n, c], ref, atol=tol), (method, n, c, (maps[n, c] - ref).abs().max())
