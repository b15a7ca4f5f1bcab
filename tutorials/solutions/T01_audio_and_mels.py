"""Solutions to T01 (audio and mels).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T01_audio_and_mels.ipynb``; the lines above the first section only make this file importable on its own.
"""

import torch


# %% ex-mel-scale
import math

A = 1000.0 / math.log10(1.0 + 1000.0 / 700.0)  # m(1000 Hz) = 1000 mel: a = 2595.04 (HTK rounds it to 2595)


def hz_to_mel(f):
    """HTK mel scale: a log10(1 + f / 700), with a fixed by m(1000 Hz) = 1000 mel."""
    return A * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    """The inverse, solved for f: f = 700 (10^(m / a) - 1)."""
    return 700.0 * (10.0 ** (m / A) - 1.0)

# %% ex-filterbank
def my_mel_filterbank(cfg):
    """Triangular mel filters [F, M], each peaking at 1; F = n_fft // 2 + 1 FFT bins."""
    n_freqs = cfg.n_fft // 2 + 1
    freqs = torch.linspace(0, cfg.sample_rate // 2, n_freqs)  # [F] Hz of each FFT bin
    lo, hi = hz_to_mel(torch.tensor(cfg.f_min)), hz_to_mel(torch.tensor(cfg.f_max))
    edges = mel_to_hz(torch.linspace(float(lo), float(hi), cfg.n_mels + 2))  # [M + 2] Hz
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]  # [M] each
    rising = (freqs[:, None] - left) / (centre - left)  # [F, M]
    falling = (right - freqs[:, None]) / (right - centre)
    return torch.minimum(rising, falling).clamp_min(0.0)

# %% ex-log-compress
def my_log_compress(power, cfg):
    """Mel power [B, M, T] -> dB -> [-1, 1] (db_min -> -1, db_max -> +1), clamped."""
    db = 10.0 * torch.log10(power.clamp_min(1e-12))
    x = 2.0 * (db - cfg.db_min) / (cfg.db_max - cfg.db_min) - 1.0
    return x.clamp(-1.0, 1.0)
