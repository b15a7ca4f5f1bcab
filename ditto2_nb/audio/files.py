"""Audio files: read any soundfile-readable file as mono at a sample rate, write 16-bit WAV, and
the overall level in dBFS (for silence checks)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .mel import AudioError, as_waveform, resample


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read any soundfile-readable file as mono float32 ``[L]`` at ``sample_rate``.

    Multi-channel audio is averaged to mono; other rates are resampled. Unreadable files raise
    :class:`AudioError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"no such audio file: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [L, C]
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot read {path} as audio ({e}); use wav/flac/ogg/mp3") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path} contains no samples")
    wave = torch.from_numpy(data.mean(axis=1))
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path} contains NaN or infinite samples")
    peak = float(wave.abs().max())
    if peak > 1.0:
        warnings.warn(f"{path}: peak amplitude {peak:.3g} exceeds full scale (1.0); the file is used as "
                      "is, but its level is out of the range the models were trained on", stacklevel=2)
    return resample(wave, sr, sample_rate)


def save_audio(path: str | Path, wave: torch.Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write a mono clip ``[L]`` (or ``[1, L]``) as 16-bit WAV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = as_waveform(wave)
    if w.shape[0] != 1:
        raise AudioError(f"save_audio writes one clip, got a batch of {w.shape[0]}")
    x = w[0].detach().cpu().numpy()
    over = float((abs(x) > 1.0).mean())
    if over > 0:
        warnings.warn(f"save_audio({path}): {100 * over:.2f}% of the samples exceed full scale and are "
                      "clipped at +-1; scale the clip down first (GriffinLimVocoder never does this)",
                      stacklevel=2)
    sf.write(str(path), x.clip(-1, 1), sample_rate, subtype="PCM_16")
    return path


def rms_db(wave: torch.Tensor) -> float:
    """Overall RMS level in dBFS of a waveform (for silence checks and summaries)."""
    rms = float(torch.as_tensor(wave).float().pow(2).mean().sqrt())
    return 20.0 * math.log10(max(rms, 1e-10))
