"""Checks of T00 (quickstart: a swell target) and T07 (your own control: brightness, the spectral
centroid of the mel, and its loss)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...audio.mel import norm_to_db, norm_to_power
from ...controls.intensity import intensity_target
from ...controls.melody import mel_centre_hz
from ...core.config import MelConfig
from .checking import (
    TutorError,
    _call,
    _compare,
    _gen,
    _needs_grad,
    _passed,
)

# ============================================================================ T00 quickstart


def check_swell_target(fn: Callable[[int], torch.Tensor]) -> None:
    """T00: ``fn(frames) -> [frames]`` a dB curve from -30 up to -10 at the middle and back to -30."""
    g = _gen()
    sizes = (int(torch.randint(16, 300, (1,), generator=g)), 64, 129)
    for frames in sizes:
        want = intensity_target("up_down", frames, -30.0, -10.0)
        got = _call(fn, frames)
        _compare(got, want, f"your curve for frames={frames}", rtol=1e-3, atol=0.05, mistakes=[
            ("it falls then rises: start quiet (-30 dB), be loudest (-10 dB) in the middle, end quiet.",
             intensity_target("down_up", frames, -30.0, -10.0)),
            ("it only rises: after the peak in the middle it should come back down to -30 dB.",
             intensity_target("ramp_up", frames, -30.0, -10.0)),
        ], hint=" Hint: a piecewise-linear curve through (0, -30), (0.5, -10), (1, -30): "
                "controls.from_points or np.interp.")
    _passed("your swell matches controls.intensity_target('up_down') for frames = "
            + ", ".join(map(str, sizes)))


# ============================================================================ T07 your own control


def spectral_centroid_hz(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Brightness: the power-weighted mean of the mel bins' centre frequencies,
    ``[B, n_mels, frames] -> [B, frames]`` Hz.

    The reference for T07's exercise (not a library control: the tutorial builds it).
    """
    power = norm_to_power(mel, cfg)  # [B, n_mels, frames]
    centres = mel_centre_hz(cfg).to(mel)  # [n_mels]
    return (power * centres[:, None]).sum(1) / power.sum(1).clamp_min(1e-12)


def _random_mels(g: torch.Generator, cfg: MelConfig, b: int = 3, frames: int = 24) -> torch.Tensor:
    base = torch.rand(b, cfg.n_mels, 1, generator=g) * 1.4 - 1.0
    return (base + 0.3 * torch.randn(b, cfg.n_mels, frames, generator=g)).clamp(-1.0, 1.0)


def check_brightness(fn: Callable) -> None:
    """T07: ``fn(mel [B, n_mels, frames], cfg) -> [B, frames]`` spectral centroid in Hz, differentiable."""
    g = _gen()
    cfgs = [MelConfig(), MelConfig(n_mels=int(torch.randint(24, 80, (1,), generator=g)), f_max=7000.0)]
    for cfg in cfgs:
        mel = _random_mels(g, cfg)
        want = spectral_centroid_hz(mel, cfg)
        centres = mel_centre_hz(cfg)[:, None]
        p = norm_to_power(mel, cfg)
        bins = torch.arange(cfg.n_mels, dtype=torch.float32)[:, None]

        def weighted(wts, centres=centres):
            return (wts * centres).sum(1) / wts.sum(1)

        mistakes = [
            ("weight the frequencies by power (audio.norm_to_power(mel, cfg)), not by the normalised mel "
             "values (which are negative for quiet bins).", weighted(mel)),
            ("weight by power, not by decibels.", weighted(norm_to_db(mel, cfg))),
            ("these look like mel-bin indices: use each bin's centre frequency in Hz "
             "(controls.mel_centre_hz(cfg)).", (p * bins).sum(1) / p.sum(1)),
            ("this exercise weights by power P, not by magnitude sqrt(P).", weighted(p.sqrt())),
            ("divide by the total power of the frame (a weighted *mean*).", (p * centres).sum(1)),
        ]
        x = mel.clone().requires_grad_(True)
        got = _call(fn, x, cfg)
        _compare(got, want, f"my_brightness(mel, cfg) with n_mels={cfg.n_mels}, f_max={cfg.f_max:g}",
                 rtol=1e-3, atol=0.5, mistakes=mistakes,
                 hint=" The centroid is Σ_m f_m · P_m / Σ_m P_m over the mel axis (dim=1).")
        _needs_grad(got, "my_brightness", "the mel").sum().backward()
        if x.grad is None or not torch.isfinite(x.grad).all() or float(x.grad.abs().sum()) == 0:
            raise TutorError("my_brightness is not differentiable: the gradient with respect to the mel "
                             "is missing, zero or NaN.")
    _passed(f"your brightness matches the power-weighted centroid (Hz) for n_mels = "
            f"{', '.join(str(c.n_mels) for c in cfgs)}, and gradients reach the mel")


def check_brightness_loss(fn: Callable) -> None:
    """T07: ``fn(target_hz [frames], cfg) -> loss`` with ``loss(mel [B, n_mels, frames]) -> [B]``: the
    mean over frames of (log2 centroid - log2 target)², in octaves²."""
    g = _gen()
    cfg = MelConfig()
    mel = _random_mels(g, cfg, b=3, frames=20)
    target = 400.0 * 2.0 ** (torch.rand(20, generator=g) * 3.0)  # 400 Hz .. 3.2 kHz
    c = spectral_centroid_hz(mel, cfg)
    want = (torch.log2(c) - torch.log2(target)).pow(2).mean(-1)
    loss = _call(fn, target.clone(), cfg)
    if not callable(loss):
        raise TutorError(f"make_brightness_loss should return a function loss(mel) -> [B], got "
                         f"{type(loss).__name__}.")
    x = mel.clone().requires_grad_(True)
    got = _call(loss, x, what="the loss function returned by make_brightness_loss")
    _compare(got, want, "loss(mel)", rtol=1e-3, atol=1e-5, mistakes=[
        ("compare in octaves, log2(centroid) - log2(target): being 100 Hz off at 200 Hz should count as "
         "much as 1 kHz off at 2 kHz.", (c - target).pow(2).mean(-1)),
        ("use log2 (octaves), not the natural log.", (c.log() - target.log()).pow(2).mean(-1)),
        ("square the octave error (squared error), not its absolute value.",
         (torch.log2(c) - torch.log2(target)).abs().mean(-1)),
        ("average over frames with .mean(-1), not .sum(-1).",
         (torch.log2(c) - torch.log2(target)).pow(2).sum(-1)),
    ])
    _needs_grad(got, "the loss", "the mel").sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or float(x.grad.abs().sum()) == 0:
        raise TutorError("the loss is not differentiable with respect to the mel (missing, zero or NaN "
                         "gradient).")
    _passed("your loss gives one octave² error per example and is differentiable")
