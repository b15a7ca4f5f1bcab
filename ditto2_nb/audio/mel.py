"""The mel front-end: waveform -> normalised log-mel, its checks, and the dB/power conversions.

Conventions
-----------
* A waveform batch is ``[B, L]`` float32 in [-1, 1] at ``MelConfig.sample_rate``; a single clip
  ``[L]`` is accepted and returned with a batch dimension. :func:`wave_to_mel` refuses a waveform
  whose peak exceeds :data:`MAX_PEAK` (+6 dBFS): in memory that is a scaling mistake (integer
  samples, a gain applied twice), and its mels would be silently clamped at ``db_max``. Peaks just
  above 1 (resampling or inter-sample overshoot) are accepted.
* A mel batch is ``[B, n_mels, frames]`` (``MelConfig.n_mels`` mel bins by ``MelConfig.frames``
  frames; docs/notation.md). "Normalised" mels map
  ``[db_min, db_max]`` linearly onto ``[-1, 1]`` (so sigma_data = 0.5 suits the diffusion model).
* Power is scaled so a full-scale sine (amplitude 1) peaks at about 0 dB: the STFT magnitude is
  divided by ``window.sum() / 2``.

Everything from waveform to normalised mel is differentiable (controls backpropagate through it).

See docs/method.md, section 1.1.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.functional as AF

from ..core import validate as check
from ..core.config import MelConfig

MAX_PEAK = 2.0  # largest waveform peak wave_to_mel accepts (+6 dBFS)

class AudioError(ValueError):
    """Raised for audio the front-end cannot use (empty, NaN, wrong shape, unreadable...)."""


# ----------------------------------------------------------------------------- validation


def as_waveform(wave: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Check a waveform and return it as a float32 tensor ``[B, L]``.

    Accepts ``[L]`` (one clip) or ``[B, L]``. Stereo files should go through :func:`load_audio`,
    which averages channels; a 3-D tensor is rejected rather than guessed at.
    """
    w = torch.as_tensor(wave)
    if not torch.is_floating_point(w):
        raise AudioError(f"waveform must be floating point in [-1, 1], got dtype {w.dtype}")
    if w.ndim == 1:
        w = w[None]
    if w.ndim != 2:
        raise AudioError(
            f"waveform must be [L] or [B, L], got shape {tuple(w.shape)}; for multi-channel audio "
            "average the channels first (load_audio does this)"
        )
    if w.shape[-1] == 0:
        raise AudioError("waveform is empty (0 samples)")
    if not torch.isfinite(w).all():
        raise AudioError("waveform contains NaN or infinite samples")
    return w.float()


def check_mel(mel: torch.Tensor, cfg: MelConfig, frames: int | None = None) -> torch.Tensor:
    """Check a normalised mel batch ``[B, n_mels, frames]`` against ``cfg`` (and optionally its
    ``frames``)."""
    if mel.ndim == 2:
        mel = mel[None]
    if mel.ndim != 3 or mel.shape[1] != cfg.n_mels:
        raise AudioError(f"mel must be [B, {cfg.n_mels}, T], got shape {tuple(mel.shape)}")
    if frames is not None and mel.shape[-1] != frames:
        raise AudioError(f"mel has {mel.shape[-1]} frames, expected {frames}")
    if not torch.isfinite(mel).all():
        raise AudioError("mel contains NaN or infinite values")
    return mel


# ----------------------------------------------------------------------------- mel analysis


def _window(cfg: MelConfig, device: torch.device | None = None) -> torch.Tensor:
    return torch.hann_window(cfg.n_fft, device=device)


def mel_filterbank(cfg: MelConfig, device: torch.device | None = None) -> torch.Tensor:
    """Triangular mel filterbank ``[n_freq, n_mels]`` (HTK scale, peak 1), ``n_freq = n_fft // 2 + 1``."""
    fb = AF.melscale_fbanks(
        cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, norm=None,
        mel_scale="htk",
    )
    return fb.to(device) if device is not None else fb


def stft_magnitude(wave: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Scaled STFT magnitude ``[B, n_freq, L // hop + 1]`` (``L // hop + 1`` centred frames)."""
    win = _window(cfg, wave.device)
    spec = torch.stft(wave, cfg.n_fft, cfg.hop_length, window=win, center=True,
                      return_complex=True)
    return spec.abs() / (win.sum() / 2)


def mel_power(wave: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power spectrogram ``[B, n_mels, L // hop + 1]`` of a waveform batch ``[B, L]``."""
    mag = stft_magnitude(wave, cfg)  # [B, n_freq, L // hop + 1]
    fb = mel_filterbank(cfg, wave.device)  # [n_freq, n_mels]
    return torch.einsum("bft,fm->bmt", mag.pow(2), fb)


def power_to_db(power: torch.Tensor, floor_db: float = -120.0) -> torch.Tensor:
    """``10 log10(power)`` with a floor so silence is finite (differentiable)."""
    return 10.0 * torch.log10(power.clamp_min(10.0 ** (floor_db / 10.0)))


def db_to_norm(db: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """dB -> normalised mel in [-1, 1] (clamped)."""
    x = 2.0 * (db - cfg.db_min) / (cfg.db_max - cfg.db_min) - 1.0
    return x.clamp(-1.0, 1.0)


def norm_to_db(x: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Normalised mel -> dB (inverse of :func:`db_to_norm` inside the clamp range)."""
    return (x + 1.0) * 0.5 * (cfg.db_max - cfg.db_min) + cfg.db_min


def norm_to_power(x: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Normalised mel -> mel power (linear)."""
    return 10.0 ** (norm_to_db(x, cfg) / 10.0)


def wave_to_mel(wave: torch.Tensor | np.ndarray, cfg: MelConfig,
                sample_rate: int | None = None) -> torch.Tensor:
    """Waveform ``[L]`` or ``[B, L]`` -> normalised log-mel ``[B, n_mels, frames]``.

    ``frames = L // hop_length`` (the trailing centred frame is dropped, so a clip of
    ``cfg.n_samples`` samples gives exactly ``cfg.frames`` frames). If ``sample_rate`` is given and
    differs from ``cfg.sample_rate`` the waveform is resampled first (a documented conversion).
    """
    w = as_waveform(wave)
    peak = float(w.detach().abs().max())
    if peak > MAX_PEAK:
        raise AudioError(f"waveform peak amplitude {peak:.3g} is far outside [-1, 1] (allowed: peak <= "
                         f"{MAX_PEAK:g}, i.e. +6 dBFS); scale it first, e.g. wave / wave.abs().max() "
                         "(integer samples: divide by 32768), or read files with load_audio, which does")
    if sample_rate is not None:
        sample_rate = check.limited("sample_rate", sample_rate)
    if sample_rate is not None and sample_rate != cfg.sample_rate:
        w = resample(w, sample_rate, cfg.sample_rate)
    if w.shape[-1] < cfg.hop_length:
        raise AudioError(f"waveform has {w.shape[-1]} samples, fewer than one hop "
                         f"({cfg.hop_length})")
    n_frames = w.shape[-1] // cfg.hop_length
    return db_to_norm(power_to_db(mel_power(w, cfg)), cfg)[..., :n_frames]


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's sinc interpolation)."""
    orig_sr = check.limited("sample_rate", orig_sr, label="orig_sr (sample rate)")
    new_sr = check.limited("sample_rate", new_sr, label="new_sr (sample rate)")
    if orig_sr == new_sr:
        return wave
    return AF.resample(wave, orig_sr, new_sr)
