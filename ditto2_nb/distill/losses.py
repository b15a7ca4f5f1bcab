"""The distillation losses: consistency distillation (CD), CTM (with its denoising term, DSM), the
distances they use, and the guided teacher's Heun solver they learn from.

Guidance is distilled in: the teacher step uses the CFG-guided denoiser at a fixed scale ``w``,
so one student evaluation replaces two teacher evaluations.

See docs/method.md, section 3 (distillation: CM, CTM, distilled guidance, the target network).
"""

from __future__ import annotations

import torch

from ..core.config import DistillConfig
from ..core.train import unwrap
from ..diffusion.losses import edm_loss
from ..diffusion.networks import Denoiser
from ..diffusion.precond import append_dims
from ..diffusion.samplers import guided
from ..diffusion.schedule import karras_sigmas
from .students import ConsistencyModel, CTMModel


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


def _grid(model, cfg: DistillConfig, device) -> torch.Tensor:
    return karras_sigmas(cfg.n_grid, model.sigma_min, model.sigma_max, append_zero=False).to(device)


@torch.no_grad()
def teacher_solve(teacher: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, tags, w: float):
    """Per-example Heun integration of the guided teacher along the rows of ``sigmas`` ``[B, k+1]``.

    A row may repeat its last sigma (fewer steps than the others): those steps leave it unchanged.
    """
    denoise = guided(teacher, tags, w)
    for j in range(sigmas.shape[1] - 1):
        s_now, s_next = sigmas[:, j], sigmas[:, j + 1]
        active = s_next < s_now
        if not active.any():
            break
        sn, sx = append_dims(s_now, x.ndim), append_dims(s_next, x.ndim)
        d = (x - denoise(x, s_now)) / sn  # slope at sigma
        x_euler = x + d * (sx - sn)
        d_next = (x_euler - denoise(x_euler, s_next)) / sx  # slope at sigma_next
        x = torch.where(append_dims(active, x.ndim), x + 0.5 * (d + d_next) * (sx - sn), x)
    return x


def cd_loss(student: ConsistencyModel, target: ConsistencyModel, teacher: Denoiser,
            x0: torch.Tensor, tags, gen: torch.Generator, cfg: DistillConfig) -> torch.Tensor:
    """Consistency distillation (Song et al. 2023, Algorithm 2).

    1. adjacent grid points t > t';  2. x_t = x0 + t z;  3. one guided teacher Heun step t -> t';
    4. d(f_theta(x_t, t), f_target(x_t', t')) with the target under stop-gradient.
    """
    grid = _grid(unwrap(student), cfg, x0.device)
    b = x0.shape[0]
    n = torch.randint(0, cfg.n_grid - 1, (b,), generator=gen).to(x0.device)  # 1.
    t, t_next = grid[n], grid[n + 1]
    z = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = x0 + append_dims(t, x0.ndim) * z  # 2.
    x_next = teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), tags, cfg.w)  # 3.
    with torch.no_grad():
        f_target = target(x_next, t_next, tags)
    return DISTANCES[cfg.distance](student(x_t, t, tags), f_target).mean()  # 4.


def ctm_target(student: CTMModel, target: CTMModel, x_u: torch.Tensor, u, s, tags) -> tuple:
    """The CTM target, without gradient: (inner, outer) with inner = G_sg(x_u, u, s), the
    *student's* own jump under stop-gradient, and outer = G_target(inner, s, sigma_min), the EMA
    net mapping it to (almost) clean data (Kim et al. 2024, eq. 10; the reference code's default).
    """
    floor = torch.full_like(torch.as_tensor(s, dtype=x_u.dtype), student.sigma_min)
    with torch.no_grad():
        inner = student(x_u, u, s, tags)
        return inner, target(inner, s, floor, tags)


def ctm_loss(student: CTMModel, target: CTMModel, teacher: Denoiser, x0: torch.Tensor, tags,
             gen: torch.Generator, cfg: DistillConfig) -> torch.Tensor:
    """CTM distillation (Kim et al. 2024, eq. 10 + DSM), efficient variant with k <= k_max: the
    total of :func:`ctm_terms` (which also reports the two terms and the DSM term's gradient share)."""
    return ctm_terms(student, target, teacher, x0, tags, gen, cfg)["loss"]


def ctm_terms(student: CTMModel, target: CTMModel, teacher: Denoiser, x0: torch.Tensor, tags,
              gen: torch.Generator, cfg: DistillConfig) -> dict:
    """CTM distillation's terms: ``{"loss", "ctm", "dsm", "dsm_scale", "dsm_share"}``.

    1. grid indices t > u >= s, u = t + k steps (k in 1..k_max);  2. x_t = x0 + t z;
    3. x_u = k guided teacher Heun steps from x_t;
    4. student side  G_target(G_theta(x_t, t, s), s, sigma_min)   (gradient through the outer input);
    5. target side   G_target(G_sg(x_u, u, s), s, sigma_min)       (:func:`ctm_target`, no gradient);
    6. loss = ctm + lambda * dsm, the denoising loss of g(x, sigma, sigma) (:func:`dsm_loss`) weighted
       by :func:`dsm_scale`.

    ``dsm_share`` is the DSM term's part of the two terms' gradient norms at the student's last
    layer, |lambda grad dsm| / (|grad ctm| + |lambda grad dsm|): dsm_weight / (1 + dsm_weight) under
    the adaptive balance (None when there is no DSM term or no layer to measure it at).

    Every time the network sees is on the grid, in [sigma_min, sigma_max]: the final jump goes to
    sigma_min, as the samplers' last step does (:func:`ctm_gamma_sample`), never to 0.
    ``student`` may be a data-parallel wrapper: it is called through the wrapper and its
    attributes are read from the module inside (:func:`~ditto2_nb.core.train.unwrap`).
    """
    module = unwrap(student)
    grid = _grid(module, cfg, x0.device)
    b, last = x0.shape[0], cfg.n_grid - 1
    i_t = torch.randint(0, last, (b,), generator=gen)  # 1.
    k = torch.randint(1, cfg.k_max + 1, (b,), generator=gen)
    i_u = torch.minimum(i_t + k, torch.full_like(i_t, last))
    i_s = i_u + (torch.rand(b, generator=gen) * (last - i_u + 1)).long().clamp(max=last - i_u)
    i_t, i_u, i_s = (i.to(x0.device) for i in (i_t, i_u, i_s))  # drawn on the CPU generator
    t, u, s = grid[i_t], grid[i_u], grid[i_s]
    z = torch.randn(x0.shape, generator=gen).to(x0.device)
    x_t = x0 + append_dims(t, x0.ndim) * z  # 2.
    steps = torch.stack([grid[torch.minimum(i_t + j, i_u)] for j in range(cfg.k_max + 1)], 1)
    x_u = teacher_solve(teacher, x_t, steps, tags, cfg.w)  # 3.
    floor = torch.full_like(s, module.sigma_min)
    est = target(student(x_t, t, s, tags), s, floor, tags)  # 4.
    _, tgt = ctm_target(module, target, x_u, u, s, tags)  # 5.
    ctm = DISTANCES[cfg.distance](est, tgt).mean()
    if cfg.dsm_weight <= 0:
        return {"loss": ctm, "ctm": ctm, "dsm": None, "dsm_scale": 0.0, "dsm_share": None}
    dsm = dsm_loss(student, x0, tags, gen, teacher, cfg)  # 6.
    scale, share = dsm_scale(ctm, dsm, module, cfg)
    return {"loss": ctm + scale * dsm, "ctm": ctm, "dsm": dsm, "dsm_scale": scale, "dsm_share": share}


def dsm_scale(ctm: torch.Tensor, dsm: torch.Tensor, student: CTMModel,
              cfg: DistillConfig) -> tuple[float, float | None]:
    """lambda, the DSM term's weight, and the DSM share it gives (see :func:`ctm_terms`).

    ``cfg.dsm_balance`` "adaptive" (default; the CTM authors' balance): lambda = dsm_weight
    |grad ctm| / |grad dsm|, both gradients taken at the student's last layer and lambda held
    constant (no gradient through it), so the DSM term always supplies dsm_weight / (1 + dsm_weight)
    of the two gradients' norm there. "fixed": lambda = dsm_weight. A summed distance over
    D = n_mels x frames values (pseudo-Huber) dwarfs EDM's mean-squared DSM term, so a fixed
    weight of 1 leaves the DSM term well under 1% of the gradient (measured on the laptop student).
    """
    layer = student.last_layer() if hasattr(student, "last_layer") else None
    measurable = layer is not None and layer.requires_grad and ctm.requires_grad and dsm.requires_grad
    if not measurable:
        if cfg.dsm_balance == "adaptive":
            raise ValueError("dsm_balance='adaptive' weighs the DSM term by gradient norms at the "
                             "student's last layer, so it needs a student with trainable weights and "
                             "gradients enabled; to evaluate the loss without them use dsm_balance='fixed'")
        return cfg.dsm_weight, None
    g_ctm = torch.autograd.grad(ctm, layer, retain_graph=True)[0].norm().item()
    g_dsm = torch.autograd.grad(dsm, layer, retain_graph=True)[0].norm().item()
    if cfg.dsm_balance == "adaptive":
        scale = cfg.dsm_weight * g_ctm / max(g_dsm, 1e-8)
        scale = min(scale, DSM_SCALE_MAX)
    else:
        scale = cfg.dsm_weight
    share = scale * g_dsm / max(g_ctm + scale * g_dsm, 1e-30)
    return scale, share


DSM_SCALE_MAX = 1e4  # a vanishing DSM gradient (g already a perfect denoiser) must not blow lambda up


def dsm_loss(student: CTMModel, x0, tags, gen, teacher: Denoiser | None = None,
             cfg: DistillConfig | None = None) -> torch.Tensor:
    """Denoising loss of g(x, sigma, sigma), which keeps g a good denoiser.

    ``cfg.dsm_target`` "teacher" (default): regress on the *guided* teacher's denoiser
    D_w(x, sigma) (the same w the CTM term distils), so both terms ask the network for the same
    function; "data": the plain EDM loss towards x0, which is the w = 1 denoiser and disagrees with
    a w != 1 CTM term. EDM's sigma distribution and weighting in both cases.
    """
    module = unwrap(student)
    g = lambda x, sigma, tg: module.denoise(x, sigma, sigma, tg)  # noqa: E731
    to_teacher = cfg is not None and cfg.dsm_target == "teacher" and teacher is not None
    return edm_loss(g, x0, tags, gen, sigma_data=module.sigma_data,
                    target=guided(teacher, tags, cfg.w) if to_teacher else None)
