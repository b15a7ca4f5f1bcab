"""Audio files: read any soundfile-readable file as mono at a sample rate, write 16-bit WAV, and
the overall level in dBFS (for silence checks).

Reading is strict about the file and announces what it changes: an unreadable, damaged or truncated
file raises :class:`AudioError` naming it; a file whose peak exceeds full scale (1.0) is scaled to
peak 1.0 with a warning giving the file, its peak and the gain. A file's scale is a storage
convention (integer samples stored as float read as peaks in the thousands), so the waveform is
recovered by scaling, whereas using it as is would saturate the mels at 0 dBFS.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..core import validate as check
from .mel import AudioError, as_waveform, resample

PEAK_TOLERANCE = 1e-3  # peaks up to 1 + this (float rounding of a full-scale file) are left as they are


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read any soundfile-readable file as mono float32 ``[L]`` at ``sample_rate``.

    Multi-channel audio is averaged to mono; other rates are resampled. Unreadable, damaged and
    truncated files raise :class:`AudioError` naming the file; a file louder than full scale is
    scaled to peak 1.0, with a warning (module docstring).
    """
    path = Path(path)
    sample_rate = check.limited("sample_rate", sample_rate)
    if not path.is_file():
        raise AudioError(f"no such audio file: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [L, C]
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot read {path} as audio ({e}): the file is damaged, truncated or not "
                         "wav/flac/ogg/mp3") from e
    missing = _wav_bytes_missing(path)
    if missing:
        raise AudioError(f"{path} is truncated: its header announces {missing} more bytes of samples "
                         "than the file holds (an interrupted copy or download?); re-export or re-copy it")
    if data.shape[0] == 0:
        raise AudioError(f"{path} contains no samples")
    wave = torch.from_numpy(data.mean(axis=1))
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path} contains NaN or infinite samples")
    peak = float(wave.abs().max())
    if peak > 1.0 + PEAK_TOLERANCE:
        warnings.warn(f"{path}: peak amplitude {peak:.3g} exceeds full scale (1.0); scaled by "
                      f"{-20 * math.log10(peak):.1f} dB to peak 1.0", stacklevel=2)
        wave = wave / peak
    return resample(wave, sr, sample_rate)


def _wav_bytes_missing(path: Path) -> int:
    """For a RIFF/WAVE file: how many bytes its ``data`` chunk announces beyond the end of the file
    (0 for a complete file, another format, or a streamed header of unknown size). libsndfile
    reads a truncated WAV without complaint, so this is checked here."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            n = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"data":
                if n in (0, 0xFFFFFFFF):  # written while streaming: the size was never filled in
                    return 0
                return max(0, pos + 8 + n - size)
            pos += 8 + n + (n & 1)
    return 0


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
