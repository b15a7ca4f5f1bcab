"""Training losses. Each takes the model, a clean batch and a generator, and returns a scalar."""

from __future__ import annotations

import torch

from ..core.train import unwrap
from .precond import append_dims
from .schedule import sample_log_normal_sigma


def drop_tags(tags: torch.Tensor | None, p_uncond: float, generator: torch.Generator,
              p_partial: float = 0.0):
    """Tag dropout, so that one network learns every condition a user may give it.

    Each row independently: with probability ``p_uncond`` every tag is zeroed (the null condition
    classifier-free guidance needs); else, with probability ``p_partial``, each field is kept with
    probability 1/2 (so every subset of the tags, one tag alone included, is a trained condition);
    else all tags are kept. ``p_partial = 0`` draws nothing more than all-or-nothing dropout.
    """
    if tags is None or (p_uncond <= 0 and p_partial <= 0):
        return tags
    b, k = tags.shape
    keep = (torch.rand(b, generator=generator) >= p_uncond)[:, None].expand(b, k)  # [B, K]
    if p_partial > 0:
        partial = torch.rand(b, generator=generator) < p_partial
        fields = torch.rand(b, k, generator=generator) < 0.5
        keep = keep & (~partial[:, None] | fields)
    return tags * keep.to(tags.device).long()


def edm_loss(model, x0: torch.Tensor, tags: torch.Tensor | None, generator: torch.Generator, *,
             p_uncond: float = 0.0, p_partial: float = 0.0, p_mean: float = -1.2, p_std: float = 1.2,
             sigma_data: float | None = None, target=None) -> torch.Tensor:
    """The EDM denoising loss (Karras et al. 2022, eq. 8 with Table 1's choices).

    1. ln(sigma) ~ N(p_mean, p_std^2);  2. x = x0 + sigma z;
    3. loss = lambda(sigma) ||D(x, sigma) - x0||^2 with lambda = (sigma^2 + sd^2) / (sigma sd)^2.

    ``target(x, sigma)`` (optional) replaces x0 in step 3 by another denoiser's output, computed
    without gradient (distillation towards a teacher's denoiser).

    Shapes: x0 ``[B, n_mels, frames]``, tags ``[B, n_tags]`` or None.
    """
    b, device = x0.shape[0], x0.device
    sd = unwrap(model).sigma_data if sigma_data is None else sigma_data
    sigma = sample_log_normal_sigma(b, p_mean, p_std, generator, device)  # 1.
    z = torch.randn(x0.shape, generator=generator).to(device)
    x = x0 + append_dims(sigma, x0.ndim) * z  # 2.
    d = model(x, sigma, drop_tags(tags, p_uncond, generator, p_partial))
    if target is not None:
        with torch.no_grad():
            x0 = target(x, sigma)
    weight = append_dims((sigma**2 + sd**2) / (sigma * sd) ** 2, x0.ndim)  # 3.
    return (weight * (d - x0) ** 2).mean()

