"""Distillation of the teacher into one-step students: consistency (CM) and CTM models.

Both students start from the teacher's weights and learn from the teacher's ODE solver (Heun) on a
Karras grid. Guidance is distilled in: the teacher step uses the CFG-guided denoiser at a fixed
scale ``w``, so one student evaluation replaces two teacher evaluations.

* CM: f(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, t) with the boundary scalings, so
  f(x, sigma_min) = x exactly (Song et al. 2023).
* CTM: G(x_t, t, s) = (s/t) x_t + (1 - s/t) g(x_t, t, s), with g the EDM-preconditioned teacher
  network plus a second (zero-initialised) time embedding for s (Kim et al. 2024).

Samplers: ``cm_multistep`` and ``ctm_gamma_sample``; their injected noise comes from ``noise_fn``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .losses import edm_loss
from .networks import Denoiser, UNet1d
from .precond import append_dims, consistency_scalings, ctm_jump, edm_scalings
from .samplers import guided
from .schedule import karras_sigmas


# ----------------------------------------------------------------------------- models


class ConsistencyModel(nn.Module):
    """f(x, t) with boundary scalings around a :class:`UNet1d` (student of a teacher)."""

    def __init__(self, teacher: Denoiser):
        super().__init__()
        self.cfg = teacher.cfg
        self.net: UNet1d = copy.deepcopy(teacher.net).requires_grad_(True).train()
        self.sigma_data, self.sigma_min, self.sigma_max = (teacher.sigma_data, teacher.sigma_min,
                                                           teacher.sigma_max)

    def forward(self, x, t, tags=None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])  # [B]
        tb = append_dims(t, x.ndim)
        _, _, c_in, c_noise = edm_scalings(tb, self.sigma_data)
        c_skip, c_out = consistency_scalings(tb, self.sigma_data, self.sigma_min)
        return c_skip * x + c_out * self.net(c_in * x, c_noise.flatten(), tags)


class CTMModel(nn.Module):
    """G(x_t, t, s) = (s/t) x_t + (1 - s/t) g(x_t, t, s); g(x, t, t) is a denoiser."""

    def __init__(self, teacher: Denoiser):
        super().__init__()
        self.cfg = dataclasses.replace(teacher.cfg, two_time=True)
        self.g = Denoiser(self.cfg)
        missing = self.g.load_state_dict(teacher.state_dict(), strict=False).missing_keys
        assert all(k.startswith("net.emb_s") for k in missing), missing
        self.sigma_data, self.sigma_min, self.sigma_max = (teacher.sigma_data, teacher.sigma_min,
                                                           teacher.sigma_max)

    def denoise(self, x, t, s, tags=None) -> torch.Tensor:
        return self.g(x, t, tags, sigma_s=s)

    def forward(self, x, t, s, tags=None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device).expand(x.shape[0])
        g = self.g(x, t, tags, sigma_s=s)
        return ctm_jump(x, g, append_dims(t, x.ndim), append_dims(s, x.ndim))


# ----------------------------------------------------------------------------- distances


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """sqrt(|a-b|^2 + c^2) - c per example, with c = 0.00054 sqrt(dim) (Song & Dhariwal 2023)."""
    dim = a[0].numel()
    c = 0.00054 * dim**0.5 if c is None else c
    sq = (a - b).pow(2).flatten(1).sum(1)
    return (sq + c**2).sqrt() - c


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


DISTANCES = {"pseudo_huber": pseudo_huber, "l2": l2}


# ----------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class DistillConfig:
    """Knobs of the efficient, modified distillation (defaults justified in notebooks 04/05)."""

    n_grid: int = 40  # N points of the Karras discretisation
    w: float = 2.0  # CFG scale distilled into the student (conditional teachers)
    distance: str = "pseudo_huber"
    k_max: int = 4  # CTM: at most k teacher Heun steps per target (original CTM: ~N)
    dsm_weight: float = 1.0  # CTM: weight of the denoising term on g(x, t, t)
    target_ema: float = 0.95  # EMA of the student used as the target network (mu)


def _grid(model, cfg: DistillConfig, device) -> torch.Tensor:
    return karras_sigmas(cfg.n_grid, model.sigma_min, model.sigma_max, append_zero=False).to(device)


@torch.no_grad()
def teacher_solve(teacher: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, tags, w: float):
    """Per-example Heun integration of the guided teacher along rows of ``sigmas`` ``[B, k+1]``."""
    denoise = guided(teacher, tags, w)
    for j in range(sigmas.shape[1] - 1):
        s_now, s_next = append_dims(sigmas[:, j], x.ndim), append_dims(sigmas[:, j + 1], x.ndim)
        d = (x - denoise(x, sigmas[:, j])) / s_now
        x_euler = x + d * (s_next - s_now)
        d_next = (x_euler - denoise(x_euler, sigmas[:, j + 1])) / s_next
        x = x + 0.5 * (d + d_next) * (s_next - s_now)
    return x


def cd_loss(student: ConsistencyModel, target: ConsistencyModel, teacher: Denoiser,
            x0: torch.Tensor, tags, gen: torch.Generator, cfg: DistillConfig) -> torch.Tensor:
    """Consistency distillation (Song et al. 2023, Algorithm 2).

    1. adjacent grid points t > t';  2. x_t = x0 + t z;  3. one guided teacher Heun step t -> t';
    4. d(f_theta(x_t, t), f_target(x_t', t')) with the target under stop-gradient.
    """
    grid = _grid(student, cfg, x0.device)
    b = x0.shape[0]
    n = torch.randint(0, cfg.n_grid - 1, (b,), generator=gen).to(x0.device)  # 1.
    t, t_next = grid[n], grid[n + 1]
    z = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = x0 + append_dims(t, x0.ndim) * z  # 2.
    x_next = teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), tags, cfg.w)  # 3.
    with torch.no_grad():
        f_target = target(x_next, t_next, tags)
    return DISTANCES[cfg.distance](student(x_t, t, tags), f_target).mean()  # 4.


def ctm_loss(student: CTMModel, target: CTMModel, teacher: Denoiser, x0: torch.Tensor, tags,
             gen: torch.Generator, cfg: DistillConfig) -> torch.Tensor:
    """CTM distillation (Kim et al. 2024, eq. 10 + DSM), efficient variant with k <= k_max.

    1. grid indices t > u >= s, u = t + k steps (k in 1..k_max);  2. x_t = x0 + t z;
    3. x_u = k guided teacher Heun steps from x_t;
    4. student side  G_target(G_theta(x_t, t, s), s, 0)   (gradient through the outer input);
    5. target side   G_target(G_target(x_u, u, s), s, 0)  (no gradient);
    6. plus dsm_weight * EDM denoising loss of g(x, sigma, sigma).
    """
    grid = _grid(student, cfg, x0.device)
    b, last = x0.shape[0], cfg.n_grid - 1
    i_t = torch.randint(0, last, (b,), generator=gen)  # 1.
    k = torch.randint(1, cfg.k_max + 1, (b,), generator=gen)
    i_u = torch.minimum(i_t + k, torch.full_like(i_t, last))
    i_s = i_u + (torch.rand(b, generator=gen) * (last - i_u + 1)).long().clamp(max=last - i_u)
    t, u, s = grid[i_t], grid[i_u], grid[i_s]
    z = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = x0 + append_dims(t, x0.ndim) * z  # 2.
    steps = torch.stack([grid[torch.minimum(i_t + j, i_u)] for j in range(cfg.k_max + 1)], 1)
    x_u = teacher_solve_ragged(teacher, x_t, steps, tags, cfg.w)  # 3.
    zero = torch.zeros_like(s)
    est = target(student(x_t, t, s, tags), s, zero, tags)  # 4.
    with torch.no_grad():
        tgt = target(target(x_u, u, s, tags), s, zero, tags)  # 5.
    loss = DISTANCES[cfg.distance](est, tgt).mean()
    if cfg.dsm_weight > 0:
        loss = loss + cfg.dsm_weight * dsm_loss(student, x0, tags, gen)  # 6.
    return loss


@torch.no_grad()
def teacher_solve_ragged(teacher, x, steps: torch.Tensor, tags, w: float):
    """Heun along ``steps`` ``[B, k_max+1]`` where rows may repeat their last sigma (no-op)."""
    denoise = guided(teacher, tags, w)
    for j in range(steps.shape[1] - 1):
        s_now, s_next = steps[:, j], steps[:, j + 1]
        active = s_next < s_now
        if not active.any():
            break
        sn, sx = append_dims(s_now, x.ndim), append_dims(s_next, x.ndim)
        d = (x - denoise(x, s_now)) / sn
        x_euler = x + d * (sx - sn)
        d_next = (x_euler - denoise(x_euler, s_next)) / sx
        x = torch.where(append_dims(active, x.ndim), x + 0.5 * (d + d_next) * (sx - sn), x)
    return x


def dsm_loss(student: CTMModel, x0, tags, gen) -> torch.Tensor:
    """EDM denoising loss of g(x, sigma, sigma) (keeps g a good denoiser)."""
    return edm_loss(lambda x, sigma, tg: student.denoise(x, sigma, sigma, tg), x0, tags, gen,
                    sigma_data=student.sigma_data)


# ----------------------------------------------------------------------------- samplers


def cm_multistep(model: ConsistencyModel, x_T: torch.Tensor, taus, tags=None, *,
                 noise_fn=None, callback=None) -> torch.Tensor:
    """Consistency multistep sampling (Song et al. 2023, Algorithm 1).

    x = f(x_T, T); then for each tau in ``taus``: x = f(x + sqrt(tau^2 - eps^2) z, tau).
    With ``taus`` empty this is the one-step model. ``noise_fn(x)`` supplies each z.
    """
    eps = model.sigma_min
    noise_fn = noise_fn or torch.randn_like
    x = model(x_T, model.sigma_max, tags)
    for i, tau in enumerate(taus):
        if callback is not None:
            callback(i, model.sigma_max if i == 0 else taus[i - 1], x)
        tau = float(tau)
        x = model(x + (tau**2 - eps**2) ** 0.5 * noise_fn(x), tau, tags)
    return x


def ctm_gamma_sample(model: CTMModel, x_T: torch.Tensor, ts, tags=None, *, gamma: float = 0.0,
                     noise_fn=None, callback=None) -> torch.Tensor:
    """CTM gamma-sampling (Kim et al. 2024, Algorithm 1) over times ``ts`` = [T, t_1, ..., 0].

    x <- G(x, t_i, s_i) + sqrt(t_{i+1}^2 - s_i^2) z,  s_i = sqrt(1 - gamma^2)(t_{i+1} - eps) + eps
    (s_i = 0 at the last step). gamma = 0 is deterministic; gamma = 1 is CM-like.
    """
    eps = model.sigma_min
    noise_fn = noise_fn or torch.randn_like
    ts = [float(t) for t in ts]
    x = x_T
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        if t_next <= 0:
            s = 0.0
        else:
            s = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps
        if callback is not None:
            callback(i, t, x)
        x = model(x, t, s, tags)
        if t_next > 0 and t_next**2 > s**2:
            x = x + (t_next**2 - s**2) ** 0.5 * noise_fn(x)
    return x
