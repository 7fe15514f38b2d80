"""Slow references of the explanation metrics, written from their formulas with plain loops (tiny
images only), and a model with a known answer. The tests compare xai.metrics.* against these."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

NEIGHBOURS = {
    (dy, dx): (1 / 6 if dy == 0 or dx == 0 else 1 / 12) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
}


@pytest.fixture(autouse=True)
def one_thread():
    """The metric tests run one intra-op thread (restored afterwards): their tensors are small, and on
    a shared 2-core machine two threads made them up to 100× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PatchModel(torch.nn.Module):
    """Two classes; at every pixel the class-0 logit is 0 and the class-1 logit is gain·(mean of the
    input over a fixed patch, all channels) − bias: only the patch matters for class 1."""

    def __init__(self, patch: tuple[int, int, int, int] = (8, 16, 8, 16), gain: float = 4.0, bias: float = 3.0):
        super().__init__()
        self.patch, self.gain, self.bias = patch, gain, bias
        self.scale = torch.nn.Parameter(torch.ones(()))  # gives the model a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0, y1, x0, x1 = self.patch
        logit = self.scale * self.gain * x[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3)) - self.bias
        one = logit.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
        return torch.cat([torch.zeros_like(one), one], dim=1)


class RecordingModel(torch.nn.Module):
    """Wraps a model, keeping a copy of every input batch it sees."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.inner(x)


def raster(valid: torch.Tensor) -> list[tuple[int, int]]:
    H, W = valid.shape
    return [(i, j) for i in range(H) for j in range(W) if valid[i, j]]


def score(model, image: torch.Tensor, cls: int, region: torch.Tensor, probabilities: bool = False) -> float:
    """s_c: the mean over the region of P_c (softmax of the logits unless the model outputs probabilities)."""
    with torch.no_grad():
        out = model(image.unsqueeze(0) if image.dim() == 3 else image)[0].double()
    P = out if probabilities else torch.softmax(out, dim=0)
    pixels = raster(region)
    return sum(float(P[cls, i, j]) for i, j in pixels) / len(pixels)


def order(cam: torch.Tensor, valid: torch.Tensor, descending: bool = True) -> list[tuple[int, int]]:
    """The pixels of V by value (largest first when descending), ties in raster order."""
    return sorted(raster(valid), key=lambda p: -float(cam[p]) if descending else float(cam[p]))


def round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def trapezoid(ys: list[float]) -> float:
    S = len(ys) - 1
    return sum((ys[i] + ys[i + 1]) / 2 / S for i in range(S))


def blur(x: torch.Tensor, kernel: int = 11, sigma: float = 5.0, valid: torch.Tensor | None = None) -> torch.Tensor:
    """3×H×W Gaussian blur with reflect padding, one output pixel at a time; with valid (H×W bool), the
    weighted mean over the window's valid pixels only (pixels outside valid keep x)."""
    C, H, W = x.shape
    v = torch.ones(H, W, dtype=torch.bool) if valid is None else valid.bool()
    half = kernel // 2
    g = [math.exp(-k * k / (2 * sigma * sigma)) for k in range(-half, half + 1)]
    total = sum(g) ** 2
    reflect = lambda i, n: -i if i < 0 else (2 * (n - 1) - i if i >= n else i)  # noqa: E731
    out = torch.zeros(C, H, W, dtype=torch.float64)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                if not v[i, j]:
                    out[c, i, j] = float(x[c, i, j])
                    continue
                num = den = 0.0
                for a in range(-half, half + 1):
                    for b in range(-half, half + 1):
                        ii, jj = reflect(i + a, H), reflect(j + b, W)
                        if v[ii, jj]:
                            weight = g[a + half] * g[b + half] / total
                            num += weight * float(x[c, ii, jj])
                            den += weight
                out[c, i, j] = num / den
    return out


def curve(
    model,
    x: torch.Tensor,
    cam: torch.Tensor,
    cls: int,
    region: torch.Tensor,
    valid: torch.Tensor,
    kind: str,
    steps: int,
    schedule: str,
) -> list[float]:
    """s_c at steps 0..S of deletion or insertion, each image built pixel by pixel."""
    pixels = order(cam, valid)
    total = len(pixels) if schedule == "linear" else min(len(pixels), 2 * int(region.sum()))
    start = x.clone().double()
    if kind == "insertion":
        blurred = blur(x, valid=valid)
        for i, j in pixels:
            start[:, i, j] = blurred[:, i, j]
    ys = []
    for i in range(steps + 1):
        image = start.clone()
        for p in pixels[: round_half_up(i * total / steps)]:
            image[:, p[0], p[1]] = 0.0 if kind == "deletion" else x[:, p[0], p[1]]
        ys.append(score(model, image.float(), cls, region))
    return ys


def impute(x: torch.Tensor, remove: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Linear imputation without noise: the system of the ROAD authors built entry by entry, solved densely."""
    C, H, W = x.shape
    unknown = [(i, j) for i in range(H) for j in range(W) if remove[i, j] and valid[i, j]]
    index = {p: k for k, p in enumerate(unknown)}
    A = np.zeros((len(unknown), len(unknown)))
    b = np.zeros((len(unknown), C))
    for (i, j), k in index.items():
        for (dy, dx), w in NEIGHBOURS.items():
            a, c = i + dy, j + dx
            if not (0 <= a < H and 0 <= c < W) or not valid[a, c]:
                continue  # outside the image, or padding: not a neighbour
            A[k, k] += w
            if (a, c) in index:
                A[k, index[(a, c)]] -= w
            else:
                b[k] += w * x[:, a, c].double().numpy()
    out = x.clone().double()
    if unknown:
        u = np.linalg.solve(A, b)
        for (i, j), k in index.items():
            out[:, i, j] = torch.from_numpy(u[k])
    return out


def road(
    model,
    x: torch.Tensor,
    cam: torch.Tensor,
    cls: int,
    region: torch.Tensor,
    valid: torch.Tensor,
    percentiles=range(10, 100, 10),
) -> tuple[list[float], list[float]]:
    """(MoRF, LeRF) scores per percentile with noise-free imputation."""
    out = []
    for descending in (True, False):
        pixels = order(cam, valid, descending)
        ys = []
        for p in percentiles:
            remove = torch.zeros_like(valid)
            for q in pixels[: round_half_up(p * len(pixels) / 100)]:
                remove[q] = True
            ys.append(score(model, impute(x, remove, valid).float(), cls, region))
        out.append(ys)
    return out[0], out[1]


def drop_increase(
    model, x: torch.Tensor, cam: torch.Tensor, cls: int, region: torch.Tensor, valid: torch.Tensor
) -> tuple[float, float]:
    values = [float(cam[p]) for p in raster(valid)]
    lo, hi = min(values), max(values)
    image = x.clone().double()
    for i, j in raster(valid):
        image[:, i, j] *= (float(cam[i, j]) - lo) / (hi - lo) if hi > lo else 0.0
    y, o = score(model, x, cls, region), score(model, image.float(), cls, region)
    return max(0.0, y - o) / y * 100, 100.0 * (o > y * (1 + 1e-6))  # below float32 resolution: a tie


def energy(cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    pixels = raster(valid)
    return sum(float(cam[p]) for p in pixels if gt[p]) / sum(float(cam[p]) for p in pixels)


def pointing(cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    pixels = raster(valid)
    top = max(float(cam[p]) for p in pixels)
    return float(any(gt[p] for p in pixels if float(cam[p]) == top))


def rank_accuracy(cam: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    k = sum(1 for p in raster(valid) if gt[p])
    return sum(1 for p in order(cam, valid)[:k] if gt[p]) / k


def spearman(a: list[float], b: list[float]) -> float:
    """Pearson correlation of average ranks, ranks counted pair by pair."""

    def ranks(v: list[float]) -> list[float]:
        return [sum(1 for u in v if u < t) + (sum(1 for u in v if u == t) + 1) / 2 for t in v]

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((p - ma) * (q - mb) for p, q in zip(ra, rb, strict=True))
    return cov / math.sqrt(sum((p - ma) ** 2 for p in ra) * sum((q - mb) ** 2 for q in rb))


def pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((p - ma) * (q - mb) for p, q in zip(a, b, strict=True))
    return cov / math.sqrt(sum((p - ma) ** 2 for p in a) * sum((q - mb) ** 2 for q in b))


def removed(x: torch.Tensor, pixels: list[tuple[int, int]]) -> torch.Tensor:
    """x (3×H×W) with the pixels set to 0 in all channels."""
    image = x.clone()
    for i, j in pixels:
        image[:, i, j] = 0
    return image


def faithfulness_correlation(
    model, x: torch.Tensor, cam: torch.Tensor, cls: int, region: torch.Tensor, subsets: torch.Tensor
) -> float:
    """Pearson r over t of Σ_{S_t} L and s_c(x) − s_c(x with S_t removed)."""
    y = score(model, x, cls, region)
    sums, deltas = [], []
    for subset in subsets:
        pixels = raster(subset)
        sums.append(sum(float(cam[p]) for p in pixels))
        deltas.append(y - score(model, removed(x, pixels), cls, region))
    return pearson(sums, deltas)


def irof(model, x: torch.Tensor, cam: torch.Tensor, cls: int, region: torch.Tensor, segments: torch.Tensor) -> float:
    """1 − Σ_{k<K} (q_k + q_{k+1}) / 2K, q_k = s_c(x with the k superpixels of highest mean L removed)/s_c(x)."""
    labels = sorted({int(segments[p]) for p in raster(segments > 0)})
    members = {k: [p for p in raster(segments == k)] for k in labels}
    mean = {k: sum(float(cam[p]) for p in members[k]) / len(members[k]) for k in labels}
    ordered = sorted(labels, key=lambda k: (-mean[k], k))
    y = score(model, x, cls, region)
    q, gone = [1.0], []
    for k in ordered:
        gone += members[k]
        q.append(score(model, removed(x, gone), cls, region) / y)
    K = len(q) - 1
    return 1 - sum((q[i] + q[i + 1]) / 2 for i in range(K)) / K


def local_lipschitz(noisy: list, noises: list, original: torch.Tensor, valid: torch.Tensor) -> float:
    """max_i sqrt(Σ_V (L_i − L)²) / sqrt(Σ_{V, channels} ε_i²)."""
    out = []
    for m, e in zip(noisy, noises, strict=True):
        e = e.reshape(-1, *valid.shape)
        num = sum((float(m[p]) - float(original[p])) ** 2 for p in raster(valid))
        den = sum(float(e[c, i, j]) ** 2 for i, j in raster(valid) for c in range(e.shape[0]))
        out.append(math.sqrt(num) / math.sqrt(den))
    return max(out)


def ssim(a: torch.Tensor, b: torch.Tensor, win: int = 7) -> float:
    """The mean over the windows win×win lying inside the image of ((2μ_aμ_b + C1)(2σ_ab + C2)) /
    ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)), sample (co)variances, C1 = (0.01R)², C2 = (0.03R)², R = the
    range of both maps (Wang et al. 2004, as skimage computes it)."""
    A, B = a.double().tolist(), b.double().tolist()
    R = max(max(map(max, A)), max(map(max, B))) - min(min(map(min, A)), min(map(min, B)))
    C1, C2, n, h = (0.01 * R) ** 2, (0.03 * R) ** 2, win * win, win // 2
    values = []
    for i in range(h, len(A) - h):
        for j in range(h, len(A[0]) - h):
            pa = [A[i + di][j + dj] for di in range(-h, h + 1) for dj in range(-h, h + 1)]
            pb = [B[i + di][j + dj] for di in range(-h, h + 1) for dj in range(-h, h + 1)]
            ma, mb = sum(pa) / n, sum(pb) / n
            va = sum((p - ma) ** 2 for p in pa) / (n - 1)
            vb = sum((p - mb) ** 2 for p in pb) / (n - 1)
            cab = sum((p - ma) * (q - mb) for p, q in zip(pa, pb, strict=True)) / (n - 1)
            values.append((2 * ma * mb + C1) * (2 * cab + C2) / ((ma**2 + mb**2 + C1) * (va + vb + C2)))
    return sum(values) / len(values)


def sobel(x: torch.Tensor, mean: list[float], std: list[float], valid: torch.Tensor) -> torch.Tensor:
    """The Sobel reference map, pixel by pixel: grey Y = 0.299 R + 0.587 G + 0.114 B of clamp(x·std + mean, 0, 1);
    on the bounding box of V, dx = Σ_{i,j} K[i][j]·Y(y+i−1, x+j−1) with K = [[-1,0,1],[-2,0,2],[-1,0,1]], dy with
    Kᵀ, an index beyond the box reflected without repeating the edge (−1 → 1, n → n−2); S = |dx| + |dy|,
    (S − min_V S) / (max_V S − min_V S) on V (0 if constant), 0 elsewhere."""
    H, W = valid.shape
    ys = [y for y in range(H) if bool(valid[y].any())]
    xs = [c for c in range(W) if bool(valid[:, c].any())]
    y0, y1, x0, x1 = ys[0], ys[-1], xs[0], xs[-1]

    def grey(y: int, c: int) -> float:
        rgb = [min(1.0, max(0.0, float(x[k, y, c]) * std[k] + mean[k])) for k in range(3)]
        return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]

    def inside(i: int, lo: int, hi: int) -> int:
        if hi == lo:
            return lo
        return lo + abs(i - lo) if i < lo else (hi - abs(i - hi) if i > hi else i)

    K = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    S = torch.zeros(H, W, dtype=torch.float64)
    for y in range(y0, y1 + 1):
        for c in range(x0, x1 + 1):
            dx = dy = 0.0
            for i in range(3):
                for j in range(3):
                    g = grey(inside(y + i - 1, y0, y1), inside(c + j - 1, x0, x1))
                    dx += K[i][j] * g
                    dy += K[j][i] * g
            S[y, c] = abs(dx) + abs(dy)
    lo = min(float(S[y, c]) for y, c in raster(valid))
    hi = max(float(S[y, c]) for y, c in raster(valid))
    out = torch.zeros(H, W, dtype=torch.float64)
    for y, c in raster(valid):
        out[y, c] = (S[y, c] - lo) / (hi - lo) if hi > lo else 0.0
    return out
