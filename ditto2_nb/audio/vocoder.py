"""Mel -> waveform: the Griffin-Lim vocoder (no weights, deterministic, differentiable) and the
spectral convergence that measures what a mel round trip loses.

See docs/method.md, section 1.2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from ..core.config import MelConfig
from .mel import _window, check_mel, mel_filterbank, norm_to_power


class GriffinLimVocoder:
    """Mel -> linear magnitude (non-negative least squares-ish) -> Griffin-Lim phase recovery.

    Deterministic (the phase starts from zero, not at random). Needs no weights. Differentiable
    through the mel inversion; Griffin-Lim's iterations are plain torch ops too.

    The audio never clips: instead of cutting samples at +-1, a look-ahead limiter (:meth:`limit`)
    lowers the gain smoothly around the peaks that would exceed ``ceiling``; the deepest gain
    reduction of each clip of the last call is in ``last_gain_db`` (0 = untouched). Everything
    downstream (the controls' evaluation, the WAV files) uses this same audio.
    """

    def __init__(self, cfg: MelConfig, n_iter: int = 32, momentum: float = 0.99, ceiling: float = 0.98):
        if not 0 < ceiling <= 1:
            raise ValueError(f"ceiling={ceiling} must be in (0, 1] (full scale = 1)")
        self.cfg, self.n_iter, self.momentum, self.ceiling = cfg, n_iter, momentum, ceiling
        self.window = 2 * (cfg.sample_rate // 200) + 1  # ~10 ms: odd, centred on each sample
        self.last_gain_db: list[float] = []
        self.sample_rate = cfg.sample_rate
        fb = mel_filterbank(cfg)  # [n_freq, n_mels]
        # Pseudo-inverse of the filterbank, computed once: mel power -> linear power.
        self._fb_pinv = torch.linalg.pinv(fb.T)  # [n_freq, n_mels]
        self._fb = fb

    def linear_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``[B, n_mels, frames]`` -> scaled linear magnitude ``[B, n_freq, frames]``."""
        power = norm_to_power(mel, self.cfg)  # [B, n_mels, frames]
        fb_pinv = self._fb_pinv.to(mel.device)
        lin = torch.einsum("fm,bmt->bft", fb_pinv, power).clamp_min(0.0)
        # A few multiplicative NNLS updates sharpen the pseudo-inverse (keeps lin >= 0).
        fb = self._fb.to(mel.device)
        for _ in range(8):
            approx = torch.einsum("fm,bft->bmt", fb, lin).clamp_min(1e-12)
            lin = lin * torch.einsum("fm,bmt->bft", fb, power / approx) / (
                fb.sum(1)[None, :, None] + 1e-12)
        return lin.clamp_min(1e-12).sqrt()  # floor: sqrt'(0) is infinite, gradients would be NaN

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        mel = check_mel(mel, self.cfg)
        cfg = self.cfg
        win = _window(cfg, mel.device)
        mag = self.linear_magnitude(mel) * (win.sum() / 2)  # undo the analysis scaling
        mag = torch.cat([mag, mag[..., -1:]], dim=-1)  # [B, n_freq, frames + 1]: the dropped centred frame
        length = mel.shape[-1] * cfg.hop_length
        wave = AF.griffinlim(
            mag, win, cfg.n_fft, cfg.hop_length, cfg.n_fft, power=1.0, n_iter=self.n_iter,
            momentum=self.momentum, length=length, rand_init=False,
        )
        return self.limit(wave)

    def limit(self, wave: torch.Tensor) -> torch.Tensor:
        """A look-ahead peak limiter: the gain min(1, ceiling / |x|) is held at its minimum over a
        ``window`` around each sample and then averaged over the same window, so it is smooth,
        touches only the neighbourhood of the peaks and never lets |x| exceed the ceiling."""
        w = self.window
        g = (self.ceiling / wave.abs().clamp_min(1e-12)).clamp(max=1.0)[:, None]  # [B, 1, L]
        held = -F.max_pool1d(-g, w, stride=1, padding=w // 2)
        smooth = F.avg_pool1d(F.pad(held, (w // 2, w // 2), mode="replicate"), w, stride=1)
        gain = torch.minimum(smooth, g)[:, 0]  # (equal inside the clip; at its ends the bound binds)
        self.last_gain_db = (20 * torch.log10(gain.detach().min(-1).values)).tolist()
        return wave * gain


def clipped_fraction(wave: torch.Tensor, threshold: float = 0.999) -> float:
    """Fraction of samples at or beyond ``threshold`` of full scale (what a WAV would clip)."""
    return float((wave.detach().abs() >= threshold).float().mean())


def spectral_convergence(mel_ref: torch.Tensor, mel_est: torch.Tensor, cfg: MelConfig) -> float:
    """``||S - S_hat||_F / ||S||_F`` on mel magnitudes (sqrt of mel power), from normalised mels."""
    s, s_hat = norm_to_power(mel_ref, cfg).sqrt(), norm_to_power(mel_est, cfg).sqrt()
    return float(torch.linalg.norm(s - s_hat) / torch.linalg.norm(s))
