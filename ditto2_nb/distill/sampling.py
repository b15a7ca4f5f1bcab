"""Sampling the students: CM multistep and CTM gamma-sampling, the decode times, and
:func:`student_decode`, the M-step decode of x_T that DITTO-2 ends with.

Injected noise comes from ``noise_fn`` (the samplers) or, in :func:`student_decode`, from one
generator per example seeded by ``seed + k`` for row k, so a decode is a deterministic function
of x_T and an example's decode does not depend on the batch it is in.

See docs/method.md, section 4 (sampling the students).
"""

from __future__ import annotations

import torch

from ..controls.intensity import intensity
from ..controls.melody import chroma_agreement
from ..core import validate as check
from ..diffusion.samplers import row_noise
from ..diffusion.schedule import karras_sigmas
from .students import ConsistencyModel, CTMModel, decode_defaults


def cm_multistep(model: ConsistencyModel, x_T: torch.Tensor, taus, tags=None, *,
                 noise_fn=None, callback=None) -> torch.Tensor:
    """Consistency multistep sampling (Song et al. 2023, Algorithm 1).

    x = f(x_T, sigma_max); then for each tau in ``taus``: x = f(x + sqrt(tau^2 - eps^2) z, tau).
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
    """CTM gamma-sampling (Kim et al. 2024, Algorithm 1) over times ``ts`` = [sigma_max, t_1, ..., 0].

    x <- G(x, t_i, s_i) + sqrt(t_{i+1}^2 - s_i^2) z,  s_i = sqrt(1 - gamma^2)(t_{i+1} - eps) + eps
    (s_i = eps = sigma_min at the last step: the output is x at sigma_min, the end of the grid the
    student was trained on; the network never sees s = 0). gamma = 0 is deterministic; gamma = 1
    is CM-like.
    """
    eps = model.sigma_min
    noise_fn = noise_fn or torch.randn_like
    ts = [float(t) for t in ts]
    x = x_T
    for i in range(len(ts) - 1):
        t, t_next = ts[i], ts[i + 1]
        if t_next <= eps:
            s = eps
        else:
            s = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps
        if callback is not None:
            callback(i, t, x)
        x = model(x, t, s, tags)
        if t_next > eps and t_next**2 > s**2:
            x = x + (t_next**2 - s**2) ** 0.5 * noise_fn(x)
    return x


def student_times(model, steps: int, sigma_mid: float | None = None) -> list[float]:
    """Decode times [sigma_max, ..., 0] for ``steps`` student steps: Karras-spaced, or with one
    intermediate sigma when ``steps == 2`` (``sigma_mid``, else the model's measured default from
    :func:`decode_defaults`, else the Karras midpoint)."""
    if steps == 2 and sigma_mid is None:
        sigma_mid = decode_defaults(model).get("sigma_mid")
    if steps == 2 and sigma_mid is not None:
        return [model.sigma_max, float(sigma_mid), 0.0]
    grid = karras_sigmas(steps + 1, model.sigma_min, model.sigma_max, append_zero=False).tolist()
    return grid[:-1] + [0.0]  # M + 1 times: sigma_max, M - 1 intermediate sigmas, then 0


def check_decode(model, steps: int | None = None, gamma: float = 0.0, sigma_mid: float | None = None,
                 seed: int = 0) -> None:
    """Range checks of a decode's settings (``steps`` None: not known yet)."""
    if steps is not None:
        check.limited("decode_steps", steps, label="decode steps")
    check.real("gamma", gamma, 0.0, 1.0)
    if sigma_mid is not None:
        check.real("sigma_mid", sigma_mid, model.sigma_min, model.sigma_max, lo_open=True, hi_open=True)
    check.limited("seed", seed)


def student_decode(model, x_T: torch.Tensor, steps: int, tags=None, *, gamma: float = 0.0,
                   sigma_mid: float | None = None, seed: int = 0) -> torch.Tensor:
    """Decode x_T with ``steps`` student evaluations (CM multistep or CTM gamma-sampling).

    Injected noise for row k is drawn from a generator seeded by ``seed + k``
    (:func:`~ditto2_nb.diffusion.samplers.row_noise`), so the decode is a deterministic function of
    x_T (what DITTO-2's final decode needs) and row k's decode does not depend on the other rows.
    """
    check_decode(model, steps, gamma, sigma_mid, seed)
    return decode_unchecked(model, x_T, steps, tags, gamma=gamma, sigma_mid=sigma_mid, seed=seed)


def decode_unchecked(model, x_T, steps, tags=None, *, gamma=0.0, sigma_mid=None, seed=0) -> torch.Tensor:
    """:func:`student_decode` without the range checks, for a caller that made them once
    (DITTO-2 decodes every iteration with the same settings)."""
    noise_fn = row_noise(seed, "student decode")  # per example: a row's decode ignores the batch
    ts = student_times(model, steps, sigma_mid)
    if isinstance(model, ConsistencyModel):
        return cm_multistep(model, x_T, ts[1:-1], tags, noise_fn=noise_fn)
    return ctm_gamma_sample(model, x_T, ts, tags, gamma=gamma, noise_fn=noise_fn)


def trajectory_gap(model, x_T: torch.Tensor, mel_cfg, steps: int, tags=None, **decode_kw) -> dict:
    """How far the ``steps``-step decode lands from the 1-step jump, for the same x_T.

    Returns mel MSE, intensity MSE (dB^2) and top-1 chroma agreement between the two outputs.
    """
    with torch.no_grad():
        one = student_decode(model, x_T, 1, tags)
        many = student_decode(model, x_T, steps, tags, **decode_kw)
    return {"mel_mse": float((one - many).pow(2).mean()),
            "intensity_mse_db2": float((intensity(one, mel_cfg) - intensity(many, mel_cfg))
                                       .pow(2).mean()),
            "chroma_agreement": chroma_agreement(one, many, mel_cfg)}
