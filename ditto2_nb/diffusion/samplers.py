"""Samplers: small pure functions over a denoiser callable ``denoise(x, sigma) -> x0_hat``.

Every sampler takes the starting point ``x = sigmas[0] * z`` from the caller and integrates the
probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma down the grid ``sigmas`` (ending in 0).
None of them is wrapped in ``torch.no_grad``: DITTO backpropagates through them. Any noise a
sampler injects comes from ``noise_fn(x) -> tensor like x`` so that callers can fix it.

Signature shared by all: ``sampler(denoise, x, sigmas, *, callback=None, progress=False,
noise_fn=None) -> x0``. ``callback(i, sigma, x, x0_hat)`` sees every step (for trajectories).

See docs/method.md, sections 2.4 (guidance) and 2.5 (the ODE and the samplers).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core import validate as check
from .schedule import karras_sigmas

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _steps(sigmas: torch.Tensor, progress: bool):
    return tqdm(range(len(sigmas) - 1), disable=not progress, leave=False)


def _default_noise(x: torch.Tensor) -> torch.Tensor:
    return torch.randn_like(x)


def sample_euler(denoise: Denoise, x, sigmas, *, callback=None, progress=False, noise_fn=None):
    """Euler on the PF-ODE (DDIM in sigma space): one network evaluation per step."""
    for i in _steps(sigmas, progress):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0_hat = denoise(x, sigma)  # 1. denoise
        if callback is not None:
            callback(i, sigma, x, x0_hat)
        d = (x - x0_hat) / sigma  # 2. ODE slope dx/dsigma
        x = x + d * (sigma_next - sigma)  # 3. step to sigma_next
    return x


def sample_heun(denoise: Denoise, x, sigmas, *, callback=None, progress=False, noise_fn=None):
    """Heun's 2nd-order method (EDM Algorithm 1, no churn): two evaluations per step except the
    last step to sigma = 0, which is Euler."""
    for i in _steps(sigmas, progress):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0_hat = denoise(x, sigma)  # 1. denoise
        if callback is not None:
            callback(i, sigma, x, x0_hat)
        d = (x - x0_hat) / sigma  # 2. slope at sigma
        x_euler = x + d * (sigma_next - sigma)  # 3. Euler predictor
        if sigma_next == 0:
            x = x_euler
            continue
        d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next  # 4. slope at sigma_next
        x = x + 0.5 * (d + d_next) * (sigma_next - sigma)  # 5. trapezoidal corrector
    return x


def sample_ancestral(denoise: Denoise, x, sigmas, *, callback=None, progress=False, noise_fn=None,
                     eta: float = 1.0):
    """Euler ancestral: step down to sigma_down, then add fresh noise back up to sigma_next."""
    noise_fn = noise_fn or _default_noise
    for i in _steps(sigmas, progress):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0_hat = denoise(x, sigma)  # 1. denoise
        if callback is not None:
            callback(i, sigma, x, x0_hat)
        # 2. split sigma_next^2 = sigma_down^2 + sigma_up^2
        sigma_up = torch.minimum(
            sigma_next,
            eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).clamp_min(0).sqrt(),
        )
        sigma_down = (sigma_next**2 - sigma_up**2).clamp_min(0).sqrt()
        x = x + (x - x0_hat) / sigma * (sigma_down - sigma)  # 3. deterministic part
        if sigma_next > 0:
            x = x + noise_fn(x) * sigma_up  # 4. injected noise
    return x


SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "ancestral": sample_ancestral}


def get_sampler(name: str):
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name]


def nfe_per_sample(name: str, steps: int) -> int:
    """Network evaluations of a sampler over ``steps`` steps (ending at sigma = 0)."""
    return 2 * steps - 1 if name == "heun" else steps


def guided(model, tags: torch.Tensor | None = None, w: float = 1.0) -> Denoise:
    """Close a :class:`~ditto2_nb.diffusion.networks.Denoiser` over its conditioning, with classifier-free
    guidance: D_w = D_uncond + w (D_cond - D_uncond), both halves in one batched pass.

    ``w = 1`` (or ``tags`` None) is plain conditional (or unconditional) denoising.
    """
    if tags is None or w == 1.0:
        return lambda x, sigma: model(x, sigma, tags)

    def denoise(x, sigma):
        sigma = torch.as_tensor(sigma, device=x.device)
        if sigma.ndim > 0 and sigma.numel() > 1:  # per-example noise levels [B] -> [2B]
            sigma = torch.cat([sigma, sigma])
        both = model(torch.cat([x, x]), sigma, torch.cat([tags, torch.zeros_like(tags)]))
        d_cond, d_uncond = both.chunk(2)
        return d_uncond + w * (d_cond - d_uncond)

    return denoise


def seeded_noise(seeds: list[int], shape: tuple[int, ...], device="cpu") -> torch.Tensor:
    """One generator per example: row k depends only on ``seeds[k]`` (any batch size)."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).to(device)


def row_noise(seed: int, stream: str):
    """``noise_fn(x)`` for a sampler's injected noise, one generator per example: row k of every
    draw comes from seed ``seed + k`` (as :func:`seeded_noise` seeds z), so an example's noise does
    not depend on the batch it sits in; ``stream`` names the use, so that its draws are not
    :func:`seeded_noise`'s for the same seed (the injected noise must not repeat z)."""
    gens: list[torch.Generator] = []
    salt = zlib.crc32(stream.encode())

    def noise_fn(x: torch.Tensor) -> torch.Tensor:
        while len(gens) < x.shape[0]:
            key = np.random.SeedSequence([seed + len(gens), salt]).generate_state(2, np.uint32)
            gens.append(torch.Generator().manual_seed(int(key[0]) << 31 | int(key[1]) >> 1))
        rows = [torch.randn(x.shape[1:], generator=g) for g in gens[:x.shape[0]]]
        return torch.stack(rows).to(device=x.device, dtype=x.dtype)

    return noise_fn


def generate(model, n: int, frames: int, *, steps: int = 20, sampler: str = "heun",
             tags: torch.Tensor | None = None, w: float = 1.0, seed: int = 0,
             progress: bool = False) -> torch.Tensor:
    """Sample ``n`` mels ``[n, n_mels, frames]`` from a denoiser (seeds ``seed .. seed+n-1``)."""
    n, steps = check.integer("n", n, 1), check.limited("steps", steps)
    seed, w, frames = check.limited("seed", seed), check.limited("w", w), check.limited("frames", frames)
    if frames % model.cfg.time_divisor:
        raise ValueError(f"frames={frames} must be a multiple of {model.cfg.time_divisor} for this model")
    tags = check.tags("tags", tags, n, model.cfg)
    device = next(model.parameters()).device
    sigmas = karras_for(model, steps).to(device)
    x = seeded_noise(range(seed, seed + n), (model.cfg.n_mels, frames), device) * sigmas[0]
    return get_sampler(sampler)(guided(model, tags, w), x, sigmas, progress=progress,
                                noise_fn=row_noise(seed, "ancestral"))


def karras_for(model, steps: int, rho: float = 7.0) -> torch.Tensor:
    """The Karras grid over a model's advertised sigma range, ``[steps + 1]`` ending in 0."""
    return karras_sigmas(steps, model.sigma_min, model.sigma_max, rho)
