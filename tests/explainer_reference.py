"""Slow references of the perturbation methods, Eigen-CAM (and its gradient variants), KPCA-CAM, FEM,
Ablation-CAM, RefineCAM, FullGrad and the uncertainty summaries, written from their definitions: one
image, one class, one patch / mask / channel / pass at a time. They share no code with xai's engines."""

from __future__ import annotations

import math

import numpy as np
import torch


def _score(model, x, cls, region):
    """s_c(f(x)) = Σ_{p∈R} P_c(x)_p, softmax of a logit model's output, float64."""
    with torch.no_grad():
        P = torch.softmax(model(x), 1)
    return float((P[0, cls].double() * region.double()).sum())


def _positive_minmax(raw, valid):
    """ReLU, then min-max over the valid pixels, 0 elsewhere."""
    r = torch.relu(raw)
    vals = r[valid]
    out = torch.zeros_like(r)
    if vals.max() > vals.min():
        out[valid] = (vals - vals.min()) / (vals.max() - vals.min())
    return out


def occlusion_reference(model, x, cls, region, valid, patch, stride, fill):
    """The mean of Δ_c over the patches covering each pixel; positions 0, s, 2s, ... plus one flush with
    the photograph's far edge; the patch ∩ photograph set to `fill` (3 values)."""
    rows = [i for i in range(x.shape[-2]) if valid[i].any()]
    cols = [j for j in range(x.shape[-1]) if valid[:, j].any()]
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1

    def starts(a, b):
        out = list(range(a, b - patch + 1, stride))
        return out + ([b - patch] if out[-1] + patch < b else [])

    base = _score(model, x, cls, region)
    total = torch.zeros(x.shape[-2:], dtype=torch.float64)
    count = torch.zeros(x.shape[-2:], dtype=torch.float64)
    for yy in starts(y0, y1):
        for xx in starts(x0, x1):
            occluded = x.clone()
            for c in range(3):
                for i in range(yy, yy + patch):
                    for j in range(xx, xx + patch):
                        if valid[i, j]:
                            occluded[0, c, i, j] = fill[c]
            delta = base - _score(model, occluded, cls, region)
            total[yy : yy + patch, xx : xx + patch] += delta
            count[yy : yy + patch, xx : xx + patch] += 1
    raw = torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total)).float()
    return _positive_minmax(raw, valid), raw


def rise_reference(model, x, cls, region, valid, masks, p):
    """Σ_i s_c(x ⊙ M_i) M_i / (N p), mask by mask (padding keeps its value)."""
    total = torch.zeros(x.shape[-2:], dtype=torch.float64)
    for m in masks:
        masked = torch.where(valid, x * m, x)
        total += _score(model, masked, cls, region) * m.double()
    raw = (total / (len(masks) * p)).float()
    return _positive_minmax(raw, valid), raw


def eigencam_reference(acts):
    """pytorch-grad-cam's get_2d_projection in numpy for one image (K×h×w), with the sign that correlates
    with Σ_k A_k."""
    a = acts.double().numpy()
    rows = a.reshape(a.shape[0], -1).T
    centred = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=True)
    projection = centred @ vt[0, :]
    total = rows.sum(axis=1)
    if np.sum((projection - projection.mean()) * (total - total.mean())) < 0:
        projection = -projection
    return torch.from_numpy(np.maximum(projection, 0).reshape(a.shape[1:])).float()


def ablation_weights_reference(model, x, layer, cls, region):
    """w_k = (s_c − s_c with channel k of the layer's output zeroed) / s_c, channel by channel."""
    module = dict(model.named_modules())[layer]
    base = _score(model, x, cls, region)
    store: dict[str, torch.Tensor] = {}
    h = module.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    with torch.no_grad():
        model(x)
    h.remove()
    weights = []
    for k in range(store["a"].shape[1]):

        def zero(m, i, o, k=k):
            o = o.clone()
            o[:, k] = 0
            return o

        h = module.register_forward_hook(zero)
        ablated = _score(model, x, cls, region)
        h.remove()
        weights.append((base - ablated) / base if base != 0 else 0.0)
    return torch.tensor(weights), store["a"][0]


def flip_summaries_reference(model, x):
    """Mean, variance, normalised entropy and mutual information of softmax P over the 4 flips, pass by pass."""
    probs = []
    for dims in ((), (-1,), (-2,), (-2, -1)):
        with torch.no_grad():
            out = model(x.flip(dims) if dims else x)
        P = torch.softmax(out, 1)
        probs.append((P.flip(dims) if dims else P)[0].double())
    stack = torch.stack(probs)
    mean = stack.mean(0)
    var = stack.var(0, unbiased=False)
    ent = -(mean * torch.log(mean.clamp_min(1e-12))).sum(0) / math.log(mean.shape[0])
    per_pass = torch.stack([-(q * torch.log(q.clamp_min(1e-12))).sum(0) for q in probs]).mean(0)
    mi = (-(mean * torch.log(mean.clamp_min(1e-12))).sum(0) - per_pass) / math.log(mean.shape[0])
    return mean, var, ent, mi.clamp_min(0)


def contrast_subtracted_reference(probs, region, cls, contrast):
    """{k: weight} of the classes subtracted from s_c, from the definition (xai.contrast): contrast an int k
    -> {k: 1}; "auto": q_k = mean of P_k over R (float64), the 3 classes k ≠ c nearest to q_c
    (|q_k − q_c|, ties the lower id), weights q_k / their sum."""
    if contrast != "auto":
        return {int(contrast): 1.0}
    area = max(float(region.sum()), 1.0)
    q = [float((probs[k].double() * region.double()).sum()) / area for k in range(probs.shape[0])]
    others = sorted((k for k in range(len(q)) if k != cls), key=lambda k: (abs(q[k] - q[cls]), k))[:3]
    total = sum(q[k] for k in others)
    return {k: (q[k] / total if total > 0 else 0.0) for k in others}


def _hooked(model, x, layer):
    store = {}

    def keep(m, i, o):
        if o.requires_grad:
            o.retain_grad()
        store["a"] = o

    h = dict(model.named_modules())[layer].register_forward_hook(keep)
    try:
        out = model(x)
    finally:
        h.remove()
    return store["a"], out


def contrast_gradcam_reference(model, x, layer, cls, contrast):
    """Grad-CAM of s'_c = Σ_{p∈R_c} (P_c − Σ_k w_k P_k) (R_c the pixels predicted as c, P the softmax):
    minmax(Up(ReLU(Σ_ch mean(∂s'/∂A_ch) A_ch))), one image."""
    from tests.reference import _minmax, _up

    with torch.enable_grad():
        A, out = _hooked(model, x, layer)
        P = torch.softmax(out, 1)[0]
        R = (out.argmax(1)[0] == cls).float()
        sub = contrast_subtracted_reference(P.detach(), R, cls, contrast)
        s = ((P[cls] - sum(w * P[k] for k, w in sub.items())) * R).sum()
        s.backward()
    a, g = A[0].detach(), A.grad[0]
    L = torch.zeros(a.shape[-2:])
    for ch in range(a.shape[0]):
        L += g[ch].mean() * a[ch]
    return _minmax(_up(torch.relu(L), tuple(x.shape[-2:])))


@torch.no_grad()
def contrast_scorecam_reference(model, x, layer, cls, contrast, channels):
    """Score-CAM (baseline zero, centred weights over `channels`) of s'_c = Σ_{p∈R_c} (P_c − Σ_k w_k P_k),
    the w_k fixed from x: w_ch = s'(x ⊙ H_ch) − s'(0), channel by channel, float64 sums."""
    from tests.reference import _minmax, _up

    A, out = _hooked(model, x, layer)
    R = (out.argmax(1)[0] == cls).double()
    sub = contrast_subtracted_reference(torch.softmax(out, 1)[0], R, cls, contrast)

    def s(inp):
        P = torch.softmax(model(inp), 1)[0].double()
        return float(((P[cls] - sum(w * P[k] for k, w in sub.items())) * R).sum())

    H, W = x.shape[-2:]
    sb = s(torch.zeros_like(x))
    w = {}
    for ch in channels:
        up = _up(A[0, ch], (H, W))
        if up.max() == up.min():
            continue
        w[ch] = s(x * (up - up.min()) / (up.max() - up.min())) - sb
    mean = sum(w.values()) / len(w)
    L = torch.zeros(A.shape[-2:])
    for ch, v in w.items():
        L += (v - mean) * A[0, ch]
    return _minmax(_up(torch.relu(L), (H, W)))


def eigen_projection_reference(m, sign):
    """One image's K×h×w tensor m (Eigen-Grad-CAM: G ⊙ A; Seg-Eigen-CAM: |G| ⊙ A) projected on its first
    principal component in numpy (get_2d_projection), with the sign `sum` (correlates with Σ_k m_k) or
    `magnitude` (the largest |value| positive); ReLU."""
    a = m.double().numpy()
    rows = a.reshape(a.shape[0], -1).T
    centred = rows - rows.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=True)
    p = centred @ vt[0, :]
    if sign == "sum":
        total = rows.sum(axis=1)
        flip = np.sum((p - p.mean()) * (total - total.mean())) < 0
    else:
        flip = abs(p.min()) > abs(p.max())
    p = -p if flip else p
    return torch.from_numpy(np.maximum(p, 0).reshape(a.shape[1:])).float()


def kpca_reference(acts, kernel, gamma=None):
    """KPCA-CAM for one image (K×h×w), pair by pair: κ_ij = k(x_i, x_j) of the centred rows, the kernel
    matrix centred, its eigenvector of the largest eigenvalue times √λ, the largest |value| positive; ReLU."""
    a = acts.double().numpy()
    k = a.shape[0]
    x = a.reshape(k, -1).T
    x = x - x.mean(axis=0)
    g = 1.0 / k if gamma is None else gamma
    n = x.shape[0]
    km = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d = float(x[i] @ x[j])
            if kernel == "sigmoid":
                km[i, j] = math.tanh(g * d + 1.0)
            elif kernel == "rbf":
                km[i, j] = math.exp(-g * float(((x[i] - x[j]) ** 2).sum()))
            elif kernel == "poly":
                km[i, j] = (g * d + 1.0) ** 3
            elif kernel == "linear":
                km[i, j] = d
            else:
                ni, nj = np.linalg.norm(x[i]), np.linalg.norm(x[j])
                km[i, j] = d / (ni * nj) if ni > 0 and nj > 0 else 0.0
    one = np.full((n, n), 1.0 / n)
    kc = km - one @ km - km @ one + one @ km @ one
    values, vectors = np.linalg.eigh(kc)
    p = vectors[:, -1] * math.sqrt(max(values[-1], 0.0))
    p = -p if abs(p.min()) > abs(p.max()) else p
    return torch.from_numpy(np.maximum(p, 0).reshape(a.shape[1:])).float()


def fem_reference(acts, k=2.0):
    """FEM for one image (K×h×w), channel by channel: w_k = the share of cells above μ_k + k σ_k
    (population σ), L = ReLU(Σ_k w_k A_k)."""
    a = acts.double().numpy()
    L = np.zeros(a.shape[1:])
    for c in range(a.shape[0]):
        ch = a[c]
        threshold = ch.mean() + k * ch.std()
        L += (ch > threshold).mean() * ch
    return torch.from_numpy(np.maximum(L, 0)).float()


def shapleycam_reference(m, x, layer, cls, region="pred", eps=1e-4):
    """ShapleyCAM's L_c for one image (1×3×H×W) of a float64 model m, its Hessian term by central
    differences of the gradient: H A ≈ (∇s(A + εA) − ∇s(A − εA)) / 2ε, w_k = mean_ij (∇s(A) − ½ H A)_k,
    L = ReLU(Σ_k w_k A_k) at the layer (s: the softmax probability summed over the predicted (`pred`) or
    all pixels)."""
    xd = x.double()
    module = dict(m.named_modules())[layer]
    store: dict[str, torch.Tensor] = {}
    replaced: dict[str, torch.Tensor] = {}

    def hook(_m, _i, o):
        store["a"] = o
        return replaced.get("a")

    h = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = m(xd)
        A = store["a"].detach()
        R = (out.argmax(1)[0] == cls).double() if region == "pred" else torch.ones(out.shape[-2:], dtype=torch.float64)

        def grad_at(a):
            leaf = a.clone().requires_grad_(True)
            replaced["a"] = leaf
            with torch.enable_grad():
                s = (torch.softmax(m(xd), 1)[0, cls] * R).sum()
                (g,) = torch.autograd.grad(s, leaf)
            return g

        G = grad_at(A)
        HA = (grad_at(A + eps * A) - grad_at(A - eps * A)) / (2 * eps)
    finally:
        h.remove()
    w = (G - 0.5 * HA)[0].mean(dim=(1, 2))
    L = torch.zeros(A.shape[-2:], dtype=torch.float64)
    for k in range(A.shape[1]):
        L += w[k] * A[0, k]
    return torch.relu(L).float()


def refinecam_reference(model, x, layers, cls, base="gradcam", **kw):
    """RefineCAM for one image and class: minmax(Π_l M_l), M_l = minmax(Up(ReLU(L_l))) the base CAM's
    map at layer l from tests/reference.py's channel-by-channel formulas (kw: score, region, gt, has_act)."""
    from tests.reference import _minmax, gradient_cam_reference

    product = None
    for layer in layers:
        m = gradient_cam_reference(model, x, layer, cls, base, **kw)
        product = m if product is None else product * m
    return _minmax(product)


def fullgrad_reference(model, x, cls, region="pred"):
    """FullGrad for one image (1×3×H×W) and class, s = the softmax probability summed over the region:
    minmax(Σ_ch ψ(∂s/∂x_ch ⊙ x_ch) + Σ_layers Σ_k ψ(b_k · ∂s/∂z_k)), ψ(m) = Up(minmax(|m|)) one channel at
    a time, over every Conv2d with a bias (b its bias) and every BatchNorm2d (b = β − μγ/√(σ² + ε)), z the
    layer's output before any in-place operation (its forward hook hands the rest of the network a copy)."""
    from tests.reference import _minmax, _region, _up

    layers = [
        m
        for m in model.modules()
        if (isinstance(m, torch.nn.Conv2d) and m.bias is not None) or isinstance(m, torch.nn.BatchNorm2d)
    ]
    outputs = []

    def keep(m, _i, o):
        outputs.append((m, o))
        return o.clone()

    hooks = [m.register_forward_hook(keep) for m in layers]
    xi = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            out = model(xi)
            R = _region(out.argmax(1)[0], None, cls, region)
            s = (torch.softmax(out, 1)[0, cls] * R).sum()
            grads = torch.autograd.grad(s, [xi] + [o for _, o in outputs], allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    H, W = x.shape[-2:]
    total = torch.zeros(H, W)
    for ch in range(x.shape[1]):
        total += _minmax((grads[0][0, ch] * x[0, ch]).abs())
    for (m, _), g in zip(outputs, grads[1:], strict=True):
        if g is None:
            continue
        if isinstance(m, torch.nn.BatchNorm2d):
            assert m.running_mean is not None and m.running_var is not None
            b = m.bias - m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps)
        else:
            b = m.bias
        for k in range(b.shape[0]):
            total += _up(_minmax((b[k].detach() * g[0, k]).abs()), (H, W))
    return _minmax(total)


# ---- the CAMs' smoothings (xai.methods.smoothing), written from their definitions ---------------------

# aug_smooth's views: (flip left-right, factor of the normalised input), pytorch-grad-cam's default
AUG_VIEWS = [(flip, m) for flip in (False, True) for m in (0.9, 1.0, 1.1)]


def _flip(t, flip):
    return t.flip(-1) if flip else t


def _up_to(t, size):
    return torch.nn.functional.interpolate(t[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def view_gradcam_reference(model, x, layer, score_of_output):
    """Grad-CAM's Up(ReLU(Σ_k mean(g_k) A_k)) (H×W, not normalised) of one image, g = ∂s/∂A with
    s = score_of_output(model(x)): a retained gradient on the real activation, channel by channel."""
    store = {}

    def keep(m, i, o):
        o.retain_grad()
        store["a"] = o

    h = dict(model.named_modules())[layer].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            s = score_of_output(model(x))
            model.zero_grad(set_to_none=True)
            s.backward()
    finally:
        h.remove()
    A, G = store["a"][0].detach(), store["a"].grad[0]
    L = torch.zeros(A.shape[-2:])
    for k in range(A.shape[0]):
        L += G[k].mean() * A[k]
    return _up_to(torch.relu(L), tuple(x.shape[-2:]))


def aug_smooth_reference(view_map, x, valid):
    """aug_smooth of one image (1×3×H×W): for each view (flip, m), x_t = m · flip(x) and its map
    view_map(x_t, flip) (H×W, on x_t's pixels), flipped back and min-maxed over the valid pixels; the mean
    of the six, min-maxed over the valid pixels."""
    total = torch.zeros(x.shape[-2:])
    for flip, m in AUG_VIEWS:
        total += _positive_minmax(_flip(view_map(_flip(x, flip) * m, flip), flip), valid)
    return _positive_minmax(total / len(AUG_VIEWS), valid)


def gradcam_aug_reference(model, x, layer, cls, region, valid):
    """Grad-CAM with aug_smooth, the region R (H×W, in x's pixels) flipped with each flipped view:
    s_t = Σ_{p ∈ flip_t(R)} softmax(f(x_t))_c,p."""

    def view_map(xt, flip):
        rt = _flip(region, flip)
        return view_gradcam_reference(model, xt, layer, lambda out: (torch.softmax(out, 1)[0, cls] * rt).sum())

    return aug_smooth_reference(view_map, x, valid)


def ablation_aug_reference(model, x, layer, cls, region, valid):
    """Ablation-CAM with aug_smooth: each view's weights from ablation_weights_reference on x_t with the
    region flipped with it, L = ReLU(Σ_k w_k A_k) upsampled."""

    def view_map(xt, flip):
        w, A = ablation_weights_reference(model, xt, layer, cls, _flip(region, flip))
        L = torch.zeros(A.shape[-2:])
        for k in range(A.shape[0]):
            L += float(w[k]) * A[k]
        return _up_to(torch.relu(L), tuple(x.shape[-2:]))

    return aug_smooth_reference(view_map, x, valid)


def eigen_smooth_reference(weighted, size):
    """eigen_smooth of one class: the weighted activations M (K×h×w: w_k A_k, or w_k ⊙ A_k) projected on
    their first principal component in numpy (sign: correlating with Σ_k M_k), ReLU, Up, min-max."""
    return _positive_minmax(
        _up_to(eigen_projection_reference(weighted, "sum"), size), torch.ones(size, dtype=torch.bool)
    )
