"""Slow, obviously correct references written from the formulas: per image, per class, per channel, fp32."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _acts_and_output(model, x, layer_name):
    layer = dict(model.named_modules())[layer_name]
    store = {}
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
    store = {}
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


@torch.no_grad()
def scorecam_reference(model, x, layer, cls, *, score="prob", region="pred", baseline="zero", weights="raw",
                       gt=None, has_act=False, channels=None):
    """L_c for one image x (1×3×H×W): ReLU(Up(Σ_k w_k A_k)), w_k = s(f(x⊙H_k)) − s(f(0))."""
    model.eval()
    H, W = x.shape[-2:]
    acts, out = _acts_and_output(model, x, layer)
    pred = out.argmax(1)[0]
    R = _region(pred, None if gt is None else gt[0], cls, region)
    if R.sum() == 0:  # s_c ≡ 0: nothing to explain (softmax of all-zero w would otherwise be uniform)
        return torch.zeros(H, W), torch.zeros(H, W)

    def s(inp):
        P = _probs(_scored_output(model, inp, score, has_act), score, has_act)
        return (P[0, cls] * R).sum()

    sb = s(torch.zeros_like(x)) if baseline == "zero" else torch.tensor(0.0)
    K = acts.shape[1]
    ks = range(K) if channels is None else channels
    w = torch.zeros(K)
    used = torch.zeros(K, dtype=torch.bool)
    for k in ks:
        up = F.interpolate(acts[:, k:k + 1], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        if up.max() == up.min():
            continue
        Hk = (up - up.min()) / (up.max() - up.min())
        w[k] = s(x * Hk) - sb
        used[k] = True
    if weights == "softmax":
        z = torch.full((K,), float("-inf"))
        z[used] = w[used]
        w = torch.softmax(z, 0) if used.any() else torch.zeros(K)
    combo = (w.view(K, 1, 1) * acts[0]).sum(0)
    L = torch.relu(F.interpolate(combo[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0])
    return _minmax(L), L


def gradcam_reference(model, x, layer, cls, *, score="prob", region="pred", gt=None, has_act=False):
    """minmax(Up(ReLU(Σ_k α_k A_k))), α_k the spatial mean of ∂s_c/∂A_k; one class, one image."""
    model.eval()
    H, W = x.shape[-2:]
    lay = dict(model.named_modules())[layer]
    store = {}

    def hook(m, i, o):
        o.retain_grad()
        store["a"] = o

    h = lay.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            if score == "logit" and has_act:
                act = model.segmentation_head[-1]
                h2 = act.register_forward_hook(lambda m, i, o: store.__setitem__("z", i[0]))
                out = model(x)
                h2.remove()
                scored = store["z"]
            else:
                out = model(x)
                scored = out
            P = _probs(scored, score, has_act)
            pred = out.argmax(1)[0]
            R = _region(pred, None if gt is None else gt[0], cls, region)
            s = (P[0, cls] * R).sum()
            model.zero_grad(set_to_none=True)
            if s.requires_grad:
                s.backward()
    finally:
        h.remove()
    a = store["a"]
    g = a.grad if a.grad is not None else torch.zeros_like(a)
    alpha = g[0].mean(dim=(1, 2))
    cam = torch.relu((alpha.view(-1, 1, 1) * a[0].detach()).sum(0))
    up = F.interpolate(cam[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    return _minmax(up)
