"""Noisy linear imputation (ROAD, Rong et al., ICML 2022), matrix-free in torch.

Every removed pixel i becomes the weighted mean of its neighbours N(i) that exist (8-neighbourhood;
pixels outside the image and padding pixels do not exist), jointly for all removed pixels, per channel,
as in the authors' imputations.py (tleemann/road_evaluation):

    d_i·u_i − Σ_{j∈N(i), removed} w_ij·u_j = Σ_{j∈N(i), kept} w_ij·x_j,      d_i = Σ_{j∈N(i)} w_ij
    w_ij = 1/6 for the 4 direct neighbours, 1/12 for the 4 diagonal ones

then u_i += noise·ε_i with ε_i ~ N(0, 1) drawn from seeded generators. The system A·u = b is symmetric
and, wherever a group of removed pixels touches a kept one, positive definite. It is solved for all
masks and channels at once by conjugate gradients (the stencil as a depthwise convolution), started
from a push-pull fill and preconditioned by one multigrid V-cycle: Galerkin coarse operators
Pᵀ·A·P (P: bilinear interpolation onto the removed pixels, 2× coarser per level, 9-point stencils
found by 9 probes), one l1-Jacobi sweep (ω = 1.4) before and after the coarse correction, and a
dense pseudo-inverse once a level has ≤ 64 cells. Jacobi preconditioning alone needed 279 iterations
on the large holes of MoRF at 90% (128×256, even from a coarse-to-fine initial guess); the V-cycle
needs 17–20.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import XAIError

__all__ = ["direct_solve", "noisy_linear_impute", "push_pull_fill"]

log = logging.getLogger(__name__)
_STENCIL = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])
_BILINEAR = torch.outer(torch.tensor([0.5, 1.0, 0.5]), torch.tensor([0.5, 1.0, 0.5]))
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_STENCIL_WEIGHTS = {
    (dy, dx): (0.0 if dy == dx == 0 else 1 / 6 if dy == 0 or dx == 0 else 1 / 12) for dy, dx in _OFFSETS
}
_COARSEST = 64  # cells per mask solved densely
_OMEGA = 1.4  # l1-Jacobi converges for any ω < 2
SYNC_FREE_ITERATIONS = 25  # CG iterations run without looking (the V-cycle converges in 17-20)


@functools.cache
def _on(kernel: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The 3×3 kernel (stencil or bilinear) on a device, copied there once per process."""
    with torch.inference_mode(False):  # a normal tensor, usable inside and outside inference mode
        return (_STENCIL if kernel == "stencil" else _BILINEAR).to(device, dtype).view(1, 1, 3, 3)


def _depthwise(t: torch.Tensor, kernel: str, **kw) -> torch.Tensor:
    """conv2d of every channel of every row of t (B×K×H×W) with the same 3×3 kernel ("stencil", "bilinear")."""
    B, K, H, W = t.shape
    k = _on(kernel, t.device, t.dtype).expand(B * K, 1, 3, 3)
    out = F.conv2d(t.reshape(1, B * K, H, W), k, groups=B * K, **kw)
    return out.view(B, K, *out.shape[-2:])


def _neighbour_sum(t: torch.Tensor) -> torch.Tensor:
    """Σ_{j ∈ 8-neighbourhood of i, inside the image} w_ij·t_j for every pixel of B×K×H×W."""
    return _depthwise(t, "stencil", padding=1)


def _shifts(v: torch.Tensor) -> list[torch.Tensor]:
    """v[..., y+dy, x+dx] (0 outside the image) for each offset of _OFFSETS."""
    H, W = v.shape[-2:]
    p = F.pad(v, (1, 1, 1, 1))
    return [p[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy, dx in _OFFSETS]


def push_pull_fill(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Every pixel with weight > 0 keeps values/weight; the others take the bilinearly upsampled fill
    of the 2× coarser level (values and weight 2×2-averaged), recursively; 0 where nothing is known.

    values: B×C×H×W (already multiplied by weight); weight: B×1×H×W."""
    known = weight > 0
    own = values / weight.clamp_min(torch.finfo(values.dtype).tiny)
    if min(values.shape[-2:]) <= 1:  # down to one pixel whatever is known: no host check
        return torch.where(known, own, torch.zeros_like(own))
    coarse = push_pull_fill(F.avg_pool2d(values, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True))
    up = F.interpolate(coarse, size=tuple(values.shape[-2:]), mode="bilinear", align_corners=False)
    return torch.where(known, own, up)


def noisy_linear_impute(
    x: torch.Tensor,
    remove: torch.Tensor,
    valid: torch.Tensor | None = None,
    noise: float = 0.01,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    tol: float = 1e-5,
    max_iter: int = 200,
    sync_free: bool | None = None,
    converged: torch.Tensor | None = None,
    solver: str = "auto",
) -> torch.Tensor:
    """M×C×H×W: x (1×C×H×W or C×H×W) with the pixels of each mask remove[m] (M×H×W or H×W bool,
    restricted to valid) imputed; every other pixel, padding included, keeps x's value.

    valid (H×W bool, default all): the photograph's pixels; padding counts as outside the image.
    noise: std of the Gaussian noise added to removed pixels (absolute, in x's units). generator: one
    for all masks, or one per mask (then a mask's noise does not depend on the batch it is in); noise
    is drawn on x's device (by generators on that device). Each system (mask and channel) stops on its
    own at ‖b − A·u‖ ≤ tol·‖b‖, or after max_iter iterations with a warning. A mask that keeps no pixel
    of V fills it with 0.

    sync_free (default: off the CPU): the host never looks at the device: SYNC_FREE_ITERATIONS
    iterations are run (a system that has converged is frozen, so the answer is the one the checking
    solver gives), and whether each mask converged is written into `converged` (M bool, on the
    device) for the caller to read once for many calls; without `converged` one check at the end
    continues the systems that have not converged.

    solver: "cg" (the preconditioned conjugate gradients above, made for GPUs), "direct" (a sparse LU
    factorisation per mask, scipy's SuperLU, exact to float64 rounding: on a CPU 5.5x faster than CG for
    ROAD's 18 masks of a 128×256 image, bench/bench_evaluation.py), or "auto": direct on the CPU unless
    sync_free is asked for, CG elsewhere. Both solve the same system; CG stops at its tolerance, so the
    two differ by ≲ 1e-4 in imputed values.

    Cost of CG, measured with 18 masks in one call (ROAD's 9 percentiles × MoRF and LeRF of a random smooth
    map) on one or two cores of a shared CPU: 128×256, 17–20 iterations, 0.7–1.1 s (setting up the
    V-cycle ≈ 0.05–0.1 s of it); 512×512, 19 iterations, ≈ 19 s. Memory ≈ 12·M·C·H·W floats.
    """
    x, remove, valid = _checked(x, remove, valid, generator)
    _, C, H, W = x.shape
    M = remove.shape[0]
    xf = x.float().expand(M, C, H, W)
    r = (remove & valid).unsqueeze(1).float()  # M×1×H×W: the unknowns
    blind = (x.device.type != "cpu") if sync_free is None else bool(sync_free)
    if solver not in ("auto", "cg", "direct"):
        raise XAIError(f"unknown solver '{solver}': choose auto, cg or direct")
    if solver == "direct" or (solver == "auto" and x.device.type == "cpu" and not blind):
        u = direct_solve(xf, r, valid)
        if converged is not None:
            converged.fill_(True)
    else:
        fixed = min(SYNC_FREE_ITERATIONS, max_iter) if blind and converged is not None else None
        u, active = _solve(xf, r, valid, tol, max_iter, fixed, first_check=SYNC_FREE_ITERATIONS if blind else 0)
        if converged is not None:
            converged.copy_(~active.flatten(1).any(1))
    out = torch.where(r.bool(), u, xf)
    if noise > 0:
        out = out + float(noise) * _standard_normal((M, C, H, W), generator, x.device) * r
    return out


def direct_solve(xf: torch.Tensor, r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The system of the module docstring solved exactly, mask by mask, on the host: A (the removed
    pixels' 8-neighbour weights within V, as a sparse matrix) factorised once per mask by SuperLU and
    solved for all C channels. A group of removed pixels that touches no kept pixel of V has no
    equation that pins it (A is singular there): it takes the push-pull fill, as CG leaves it.

    Args:
        xf: M×C×H×W images. r: M×1×H×W 0/1, the unknowns (removed pixels of V). valid: H×W bool.

    Returns:
        M×C×H×W: u on the unknowns (the fill elsewhere; the caller keeps x there).
    """
    H, W = valid.shape
    kept = valid.float().view(1, 1, H, W) - r
    fill = (push_pull_fill(xf * kept, kept) * r).cpu().double().numpy()
    images, removed, inside = xf.cpu().double().numpy(), r[:, 0].cpu().numpy() > 0, valid.cpu().numpy()
    out = fill.copy()
    for m in range(xf.shape[0]):
        unknown = _anchored(removed[m], inside)
        if unknown.any():
            out[m][:, unknown] = _solve_one(images[m], unknown, inside & ~removed[m], inside)
    return torch.from_numpy(out).to(xf.device, torch.float32)


def _neighbours(
    ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]
) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """(w, rows, flat index of the neighbour) for each of the 8 offsets, for the pixels (ys, xs) whose
    neighbour lies inside the image."""
    H, W = shape
    for (dy, dx), w in _STENCIL_WEIGHTS.items():
        if dy == dx == 0:
            continue
        yy, xx = ys + dy, xs + dx
        inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        yield w, np.flatnonzero(inside), yy[inside] * W + xx[inside]


def _anchored(removed: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The removed pixels (H×W bool) whose 8-connected group of removed pixels touches a kept pixel of V."""
    from scipy import ndimage

    labels, count = ndimage.label(removed, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return removed
    kept = (valid & ~removed).ravel()
    ys, xs = np.nonzero(removed)
    touches = np.zeros(ys.size, dtype=bool)
    for _, rows, j in _neighbours(ys, xs, removed.shape):
        touches[rows] |= kept[j]
    anchored = np.zeros(count + 1, dtype=bool)
    anchored[labels[ys[touches], xs[touches]]] = True
    return anchored[labels] & removed


def _solve_one(image: np.ndarray, unknown: np.ndarray, kept: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """C×n: the unknowns' values (row-major order) of d_i·u_i − Σ w_ij·u_j = Σ w_ij·x_j for one mask."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import splu

    H, W = unknown.shape
    index = np.full(H * W, -1, dtype=np.int64)
    ys, xs = np.nonzero(unknown)
    n = ys.size
    index[ys * W + xs] = np.arange(n)
    inside, known = valid.ravel(), kept.ravel()
    flat = image.reshape(image.shape[0], -1)
    d, b = np.zeros(n), np.zeros((n, image.shape[0]))
    rows, cols, values = [np.arange(n)], [], []
    for w, at, j in _neighbours(ys, xs, (H, W)):
        exists = inside[j]
        d[at[exists]] += w
        to_unknown = index[j] >= 0
        rows.append(at[to_unknown])
        cols.append(index[j[to_unknown]])
        values.append(np.full(int(to_unknown.sum()), -w))
        given = known[j]
        np.add.at(b, at[given], w * flat[:, j[given]].T)
    A = sparse.csc_matrix(
        (np.concatenate([d, *values]), (np.concatenate(rows), np.concatenate([np.arange(n), *cols]))), shape=(n, n)
    )
    return splu(A).solve(b).T


def _checked(
    x: torch.Tensor,
    remove: torch.Tensor,
    valid: torch.Tensor | None,
    generator: torch.Generator | Sequence[torch.Generator] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x as 1×C×H×W, remove as M×H×W bool and valid as H×W bool (all True by default), on x's device;
    shapes that do not match, and a number of generators other than one per mask, are refused."""
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1:
        raise XAIError(f"noisy_linear_impute expects one image (1×C×H×W), got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    remove = torch.as_tensor(remove, device=x.device).bool()
    remove = remove.unsqueeze(0) if remove.dim() == 2 else remove
    valid = (
        torch.ones(H, W, dtype=torch.bool, device=x.device)
        if valid is None
        else torch.as_tensor(valid, device=x.device).bool()
    )
    if remove.dim() != 3 or tuple(remove.shape[-2:]) != (H, W) or tuple(valid.shape) != (H, W):
        raise XAIError(
            f"masks of shape {tuple(remove.shape)} and valid of {tuple(valid.shape)} do not match the image's {(H, W)}"
        )
    M = remove.shape[0]
    if generator is not None and not isinstance(generator, torch.Generator) and len(generator) != M:
        raise XAIError(f"{len(generator)} generators given for {M} masks")
    return x, remove, valid


def _solve(
    xf: torch.Tensor,
    r: torch.Tensor,
    valid: torch.Tensor,
    tol: float,
    max_iter: int,
    fixed: int | None,
    first_check: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The system A·u = b of the module docstring for the unknowns r (M×1×H×W) of the images xf
    (M×C×H×W), solved by CG from the push-pull fill, preconditioned by the V-cycle
    (_conjugate_gradients: the solution and which systems have not converged)."""
    H, W = valid.shape
    kept = valid.float().view(1, 1, H, W) - r
    d = _neighbour_sum(valid.float().view(1, 1, H, W))
    b = _neighbour_sum(xf * kept) * r
    levels = _hierarchy(r, d)
    return _conjugate_gradients(
        levels[0].apply,
        b,
        push_pull_fill(xf * kept, kept) * r,
        lambda res: _vcycle(levels, 0, res),
        tol,
        max_iter,
        fixed,
        first_check=first_check,
    )


def _standard_normal(
    shape: tuple[int, int, int, int],
    generator: torch.Generator | Sequence[torch.Generator] | None,
    device: torch.device,
) -> torch.Tensor:
    """ε ~ N(0, 1) of M×C×H×W, from one generator for all masks or one per mask (then each mask's noise
    does not depend on the others)."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device)
    return torch.stack([torch.randn(shape[1:], generator=g, device=device) for g in generator])


@dataclass
class _Level:
    """One level of the V-cycle: the operator on M×K×h×w (zero off the unknowns); l1_inv, 1/Σ_j |a_ij|
    per row (l1-Jacobi: diag(Σ_j |a_ij|) ≥ A, so the smoother converges even where coarse cells are
    nearly dependent); the unknowns (M×1×h×w, 0/1); the 9-point coefficients (coarse levels:
    9×M×1×h×w, one per offset of _OFFSETS); on the coarsest level, the pseudo-inverse of its dense
    M×n×n matrix."""

    apply: Callable[[torch.Tensor], torch.Tensor]
    l1_inv: torch.Tensor
    unknown: torch.Tensor
    coef: torch.Tensor | None = None
    dense_inv: torch.Tensor | None = None


def _fine_level(r: torch.Tensor, d: torch.Tensor) -> _Level:
    """A·v = (d·v − Σ_j w_ij·v_j) on the unknowns r (M×1×H×W), with the stencil as a convolution."""
    return _Level(lambda v: (d * v - _neighbour_sum(v)) * r, _inverse((d + _neighbour_sum(r)) * r), r)


def _fine_coef(r: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The finest operator's 9-point coefficients (9×M×1×H×W), for an image small enough to solve densely."""
    return torch.stack(
        [
            d * r if (dy, dx) == (0, 0) else -_STENCIL_WEIGHTS[(dy, dx)] * r * shifted
            for (dy, dx), shifted in zip(_OFFSETS, _shifts(r), strict=True)
        ]
    )


def _inverse(diag: torch.Tensor) -> torch.Tensor:
    """1/diag, 0 where diag is 0 (off the unknowns)."""
    return torch.where(diag > 0, 1.0 / diag.clamp_min(1e-30), torch.zeros_like(diag))


def _prolong(vc: torch.Tensor, fine: _Level) -> torch.Tensor:
    """P·vc: bilinear interpolation (coarse cell I sits on fine pixel 2I), kept on the unknowns."""
    B, K, h, w = vc.shape
    H, W = fine.unknown.shape[-2:]
    kernel = _on("bilinear", vc.device, vc.dtype).expand(B * K, 1, 3, 3)
    up = F.conv_transpose2d(
        vc.reshape(1, B * K, h, w),
        kernel,
        stride=2,
        padding=1,
        output_padding=(H - (2 * h - 1), W - (2 * w - 1)),
        groups=B * K,
    )
    return up.view(B, K, H, W) * fine.unknown


def _restrict(v: torch.Tensor, fine: _Level) -> torch.Tensor:
    """Pᵀ·v, the adjoint of _prolong."""
    return _depthwise(v * fine.unknown, "bilinear", stride=2, padding=1)


def _hierarchy(r: torch.Tensor, d: torch.Tensor) -> list[_Level]:
    """Levels from the finest (r: M×1×H×W unknowns, d: 1×1×H×W diagonal) to ≤ _COARSEST cells."""
    levels = [_fine_level(r, d)]
    while levels[-1].unknown.shape[-2] * levels[-1].unknown.shape[-1] > _COARSEST:
        levels.append(_galerkin(levels[-1]))
    coarse = levels[-1]
    coef = coarse.coef if coarse.coef is not None else _fine_coef(r, d)
    M, _, h, w = coarse.unknown.shape
    n = h * w
    dense = torch.zeros(M, n, n, dtype=torch.float64, device=r.device)
    rows = torch.arange(n, device=r.device)
    iy, ix = rows // w, rows % w
    for k, (dy, dx) in enumerate(_OFFSETS):  # a scatter, not boolean indexing: the host never looks
        ok = (iy + dy >= 0) & (iy + dy < h) & (ix + dx >= 0) & (ix + dx < w)
        cols = torch.where(ok, rows + dy * w + dx, rows).view(1, n, 1).expand(M, n, 1)
        dense.scatter_add_(2, cols, (coef[k].flatten(1).double() * ok).unsqueeze(-1))
    coarse.dense_inv = torch.linalg.pinv(dense, hermitian=True, rtol=1e-6).float()
    return levels


def _galerkin(fine: _Level) -> _Level:
    """The next coarser level: coefficients of Pᵀ·A·P from 9 probes (cells coloured mod 3)."""
    M, _, H, W = fine.unknown.shape
    h, w = (H + 1) // 2, (W + 1) // 2
    dev = fine.unknown.device
    iy = torch.arange(h, device=dev).view(h, 1)
    ix = torch.arange(w, device=dev).view(1, w)
    probes = []
    for a in range(3):
        for c in range(3):
            e = ((iy % 3 == a) & (ix % 3 == c)).float().expand(M, 1, h, w)
            probes.append(_restrict(fine.apply(_prolong(e, fine)), fine))
    Y = torch.stack(probes)  # 9×M×1×h×w: Y[colour](I) = A_c[I, the neighbour of I with that colour]
    coef = torch.stack(
        [Y.gather(0, (3 * ((iy + dy) % 3) + (ix + dx) % 3).expand(1, M, 1, h, w))[0] for dy, dx in _OFFSETS]
    )  # 9×M×1×h×w
    unknown = (coef[4] > 0).float()
    coef = coef * unknown

    def apply(v: torch.Tensor) -> torch.Tensor:
        return sum(c * shifted for c, shifted in zip(coef, _shifts(v), strict=True))

    return _Level(apply, _inverse(coef.abs().sum(0)), unknown, coef)


def _vcycle(levels: list[_Level], k: int, res: torch.Tensor) -> torch.Tensor:
    """One symmetric V-cycle from level k on the residual res (M×C×h×w): an SPD approximation of A⁻¹."""
    lv = levels[k]
    if lv.dense_inv is not None:
        M, C, h, w = res.shape
        return (lv.dense_inv @ res.reshape(M, C, h * w).transpose(1, 2)).transpose(1, 2).reshape(M, C, h, w)
    z = _OMEGA * lv.l1_inv * res  # one smoothing sweep from 0
    z = z + _prolong(_vcycle(levels, k + 1, _restrict(res - lv.apply(z), lv)), lv)
    return z + _OMEGA * lv.l1_inv * (res - lv.apply(z))  # and one after, the same: the cycle is symmetric


def _conjugate_gradients(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    u: torch.Tensor,
    precond: Callable[[torch.Tensor], torch.Tensor],
    tol: float,
    max_iter: int,
    fixed: int | None = None,
    first_check: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preconditioned CG on independent systems (each mask and channel of M×C×H×W); a system stops,
    frozen, once its relative residual is ≤ tol, so its answer does not depend on the others in the
    batch nor on when the host looks. fixed: exactly that many iterations, the host never looks;
    else the host first looks after first_check iterations, then after every one, up to max_iter
    (with a warning). Returns (solution, M×C×1×1 bool: still active, i.e. not converged)."""
    dot = lambda a, c: (a * c).flatten(2).sum(2)[..., None, None]  # noqa: E731
    bnorm = dot(b, b).sqrt().clamp_min(1e-30)
    res = b - apply(u)
    z = precond(res)
    p = z
    rz = dot(res, z)
    active = dot(res, res).sqrt() > tol * bnorm
    it = 0
    while it < (fixed if fixed is not None else max_iter):
        if fixed is None and it >= first_check and not bool(active.any()):
            break
        it += 1
        Ap = apply(p)
        pAp = dot(p, Ap)
        alpha = torch.where(active & (pAp > 0), rz / pAp.clamp_min(1e-30), torch.zeros_like(pAp))
        u = u + alpha * p
        res = res - alpha * Ap
        active = active & (dot(res, res).sqrt() > tol * bnorm)
        z = precond(res)
        rz_new = dot(res, z)
        beta = torch.where(active, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
        p = z + beta * p
        rz = rz_new
    if fixed is None and bool(active.any()):
        log.warning(
            "noisy linear imputation: %d of %d systems did not reach tol=%g in %d iterations",
            int(active.sum()),
            active.numel(),
            tol,
            max_iter,
        )
    return u, active
