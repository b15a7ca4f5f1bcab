"""Differentiable control features of a generated (normalised) mel ``[B, M, T]``.

This module starts with the two features the distillation benchmark needs to measure trajectory
consistency (intensity and chroma); the control losses and targets build on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .audio import mel_filterbank, norm_to_db
from .config import MelConfig


def frame_energy_db(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Total mel power per frame in dB: ``[B, M, T] -> [B, T]``."""
    power = 10.0 ** (norm_to_db(mel, cfg) / 10.0)
    return 10.0 * torch.log10(power.sum(1) + 1e-10)


def intensity(mel: torch.Tensor, cfg: MelConfig, smooth_s: float = 1.0) -> torch.Tensor:
    """Frame energy in dB smoothed by a centred moving average of ``smooth_s`` seconds.

    Shapes: ``[B, M, T] -> [B, T]``. Edges are padded by replication.
    """
    e = frame_energy_db(mel, cfg)[:, None]  # [B, 1, T]
    k = max(1, int(round(smooth_s * cfg.sample_rate / cfg.hop_length)) | 1)  # odd width
    k = min(k, 2 * e.shape[-1] - 1) | 1
    e = F.pad(e, (k // 2, k // 2), mode="replicate")
    return F.avg_pool1d(e, k, stride=1)[:, 0]


def mel_centre_hz(cfg: MelConfig) -> torch.Tensor:
    """Centre frequency of each mel bin (Hz), ``[M]``."""
    fb = mel_filterbank(cfg)  # [F, M]
    freqs = torch.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    return (fb * freqs[:, None]).sum(0) / fb.sum(0).clamp_min(1e-8)


def chroma_matrix(cfg: MelConfig, f_low: float = 261.63, f_high: float = 2100.0,
                  width_semitones: float = 0.75) -> torch.Tensor:
    """Soft assignment of mel bins between middle C and ``f_high`` to 12 pitch classes ``[12, M]``.

    Each bin spreads its weight over pitch classes with a Gaussian (in semitones, circular) around
    its centre pitch; bins outside the band get zero weight (a high-pass at middle C).
    """
    hz = mel_centre_hz(cfg)
    midi = 69 + 12 * torch.log2(hz.clamp_min(1.0) / 440.0)  # [M]
    pcs = torch.arange(12, dtype=torch.float32)[:, None]  # [12, 1]
    d = torch.remainder(midi[None] - pcs + 6, 12) - 6  # circular distance in semitones
    w = torch.exp(-0.5 * (d / width_semitones) ** 2)
    band = ((hz >= f_low) & (hz <= f_high)).float()[None]
    return w * band


def chroma(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Per-frame pitch-class distribution ``[B, M, T] -> [B, 12, T]`` (softmax over log energy)."""
    power = 10.0 ** (norm_to_db(mel, cfg) / 10.0)
    energy = torch.einsum("cm,bmt->bct", chroma_matrix(cfg).to(mel.device), power)
    return torch.softmax(10 * torch.log10(energy + 1e-10) / (10 * temperature), dim=1)


def chroma_agreement(mel_a: torch.Tensor, mel_b: torch.Tensor, cfg: MelConfig) -> float:
    """Fraction of frames whose top-1 chroma agrees between two mel batches."""
    return float((chroma(mel_a, cfg).argmax(1) == chroma(mel_b, cfg).argmax(1)).float().mean())
