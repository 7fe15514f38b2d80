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
