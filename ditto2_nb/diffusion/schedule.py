"""Noise-level grids (Karras et al. 2022, eq. 5) and helpers on them."""

from __future__ import annotations

import torch


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  append_zero: bool = True) -> torch.Tensor:
    """The EDM grid of ``n`` noise levels from sigma_max down to sigma_min (then 0).

    sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.

    Returns:
        ``[n + 1]`` (with the trailing zero) or ``[n]``, float32, strictly decreasing.

    Reference: Karras et al., "Elucidating the Design Space...", eq. (5).
    """
    if n < 1:
        raise ValueError(f"need at least one noise level, got n={n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    if append_zero:
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    return sigmas.float()


def sample_log_normal_sigma(n: int, p_mean: float = -1.2, p_std: float = 1.2,
                            generator: torch.Generator | None = None,
                            device: torch.device | str = "cpu") -> torch.Tensor:
    """ln(sigma) ~ N(p_mean, p_std^2): the EDM training distribution of noise levels. ``[n]``."""
    z = torch.randn(n, generator=generator, device="cpu")
    return (p_mean + p_std * z).exp().to(device)
