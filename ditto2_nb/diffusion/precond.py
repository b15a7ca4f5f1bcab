"""Preconditioning: how a raw network F becomes a denoiser D (EDM) or a consistency function f.

Each scaling function returns tensors broadcastable against ``[B, n_mels, frames]`` when given ``sigma`` of
shape ``[B, 1, 1]``; they work on any shape.

See docs/method.md, sections 2.2 (EDM), 3.1 (consistency boundary) and 3.2 (CTM's jump).
"""

from __future__ import annotations

import torch


def edm_scalings(sigma: torch.Tensor, sigma_data: float):
    """EDM preconditioning (Karras et al. 2022, Table 1).

    D(x, sigma) = c_skip x + c_out F(c_in x, c_noise).

    Returns:
        c_skip, c_out, c_in, c_noise (same shape as ``sigma``).
    """
    sd2 = sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)  # keeps x when the noise is small
    c_out = sigma * sigma_data / (sigma**2 + sd2).sqrt()  # unit-variance target for F
    c_in = 1.0 / (sigma**2 + sd2).sqrt()  # unit-variance input for F
    c_noise = sigma.log() / 4.0  # noise-level embedding input
    return c_skip, c_out, c_in, c_noise


def consistency_scalings(t: torch.Tensor, sigma_data: float, eps: float):
    """Consistency-model boundary scalings (Song et al. 2023, appendix C).

    f(x, t) = c_skip(t) x + c_out(t) F(...), with c_skip(eps) = 1 and c_out(eps) = 0, so
    f(x, eps) = x exactly.

    Returns:
        c_skip, c_out (same shape as ``t``).
    """
    sd2 = sigma_data**2
    c_skip = sd2 / ((t - eps) ** 2 + sd2)
    c_out = (t - eps) * sigma_data / (t**2 + sd2).sqrt()
    return c_skip, c_out


def ctm_jump(x_t: torch.Tensor, g: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """CTM's two-time map G(x_t, t, s) = (s/t) x_t + (1 - s/t) g (Kim et al. 2024, eq. 9).

    ``g`` is the network's estimate of clean data; G(x, t, t) = x by construction.
    """
    ratio = s / t
    return ratio * x_t + (1.0 - ratio) * g


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape a per-example vector ``[B]`` to ``[B, 1, ..., 1]`` with ``ndim`` dimensions."""
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))
