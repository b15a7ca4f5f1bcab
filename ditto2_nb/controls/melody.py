"""Melody: a 12-bin chroma of the mel (matched pitch-class templates, softmax per frame) against
a pitch class per frame (cross-entropy on voiced frames); evaluated with librosa's chroma.

:func:`chroma` and :func:`chroma_agreement` are also the plain features of the distillation
benchmark's trajectory consistency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch

from ..audio.analysis import MIDDLE_C_HZ, librosa_chroma, wave_np
from ..audio.mel import check_mel, mel_filterbank, norm_to_power
from ..core.config import MelConfig
from ..data.labels import ClipLabels
from .base import Control, _batch, _check_frames


def mel_centre_hz(cfg: MelConfig) -> torch.Tensor:
    """Centre frequency of each mel bin (Hz), ``[n_mels]``."""
    fb = mel_filterbank(cfg)  # [n_freq, n_mels]
    freqs = torch.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    return (fb * freqs[:, None]).sum(0) / fb.sum(0).clamp_min(1e-8)


def _tone_mel_response(hz: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power of one Hann-windowed frame of a unit sine at each frequency: ``[P] -> [P, n_mels]``."""
    n = torch.arange(cfg.n_fft, dtype=torch.float64)
    win = torch.hann_window(cfg.n_fft, dtype=torch.float64)
    frames = win * torch.cos(2 * torch.pi * hz[:, None].double() * n / cfg.sample_rate)  # [P, n_fft]
    return torch.fft.rfft(frames).abs().pow(2) @ mel_filterbank(cfg).double()


@lru_cache(maxsize=16)
def _chroma_matrix(cfg: MelConfig, f_low: float, f_high: float, width_semitones: float) -> torch.Tensor:
    first = math.ceil(69 + 12 * math.log2(f_low / 440.0) - 0.01)  # MIDI pitches in the band
    last = math.floor(69 + 12 * math.log2(f_high / 440.0) + 0.01)
    if last < first:
        raise ValueError(f"no pitch between f_low={f_low} Hz and f_high={f_high} Hz")
    detune = torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)  # semitones
    weight = torch.exp(-0.5 * (detune / width_semitones) ** 2)
    pitch = torch.arange(first, last + 1, dtype=torch.float64)
    hz = 440.0 * 2.0 ** ((pitch[:, None] + detune[None] - 69.0) / 12.0)  # [P, detunings]
    resp = _tone_mel_response(hz.reshape(-1), cfg).reshape(len(pitch), len(detune), -1)
    template = torch.einsum("d,pdm->pm", weight, resp)  # [P, n_mels]
    template = template / template.norm(dim=1, keepdim=True).clamp_min(1e-30)
    out = torch.zeros(12, cfg.n_mels, dtype=torch.float64)
    out.index_add_(0, (pitch.long() % 12), template)
    return out.float()


def chroma_matrix(cfg: MelConfig, f_low: float = MIDDLE_C_HZ, f_high: float = 2100.0,
                  width_semitones: float = 0.75) -> torch.Tensor:
    """Pitch-class templates over the mel bins ``[12, n_mels]`` for pitches between ``f_low`` and ``f_high``.

    Row ``c`` sums, over every pitch of class ``c`` in the band (middle C to C7 by default: the
    high-pass at middle C), the unit-norm mel response of a sine at that pitch (a Hann-windowed STFT
    frame through the filterbank), averaged over detunings of +-0.5 semitone with a Gaussian of
    ``width_semitones``. ``chroma_matrix @ mel_power`` is then a matched filter: with 64 mels a bin
    spans up to ~3 semitones near middle C, and the *pattern* across overlapping bins still
    identifies the pitch (a pure tone's argmax is its pitch class for every MIDI pitch 60-96).
    """
    return _chroma_matrix(cfg, float(f_low), float(f_high), float(width_semitones)).clone()


def _chroma_energy(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power gathered into pitch classes ``[B, n_mels, frames] -> [B, 12, frames]``."""
    power = norm_to_power(mel, cfg)
    matrix = _chroma_matrix(cfg, MIDDLE_C_HZ, 2100.0, 0.75).to(mel.device, power.dtype)
    return torch.einsum("cm,bmt->bct", matrix, power)


def _chroma_logits(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Logits of :func:`chroma`: ``log10(energy) / temperature`` ``[B, 12, frames]``."""
    return torch.log10(_chroma_energy(mel, cfg) + 1e-10) / temperature


def chroma(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Per-frame pitch-class distribution ``[B, n_mels, frames] -> [B, 12, frames]`` (softmax over log
    energy)."""
    return torch.softmax(_chroma_logits(mel, cfg, temperature), dim=1)


def chroma_agreement(mel_a: torch.Tensor, mel_b: torch.Tensor, cfg: MelConfig) -> float:
    """Fraction of frames whose top-1 chroma agrees between two mel batches."""
    return float((chroma(mel_a, cfg).argmax(1) == chroma(mel_b, cfg).argmax(1)).float().mean())


def pitch_classes_from_mel(mel: torch.Tensor, cfg: MelConfig, rest_db: float = -40.0) -> torch.Tensor:
    """Top-1 chroma per frame of a reference mel ``[B, n_mels, frames] -> [B, frames]`` (int64, -1 = rest).

    A frame is a rest when its energy above middle C is more than ``-rest_db`` dB below the
    clip's loudest frame.
    """
    mel = check_mel(mel.detach().float(), cfg)
    silent = [i for i in range(len(mel)) if float(mel[i].max()) <= -0.99]
    if silent:
        raise ValueError(f"reference mel example(s) {silent} are silent (every bin at the -1 floor, "
                         f"{cfg.db_min:g} dB): a silent clip has no melody to follow")
    energy = _chroma_energy(mel, cfg)  # [B, 12, frames]
    level = 10 * torch.log10(energy.sum(1) + 1e-10)  # [B, frames]
    rest = level < level.max(-1, keepdim=True).values + rest_db
    return torch.where(rest, -1, energy.argmax(1))


@dataclass(frozen=True, eq=False)
class MelodyControl(Control):
    """Melody: ``f`` = :func:`chroma` ``[B, 12, frames]``, ``y`` = pitch class per frame ``[1 or B, frames]``.

    Loss: cross-entropy ``-log f[y_t, t]`` averaged over the voiced frames (``y_t >= 0``; -1 =
    rest is ignored). Evaluation: frame accuracy of the top-1 librosa STFT chroma of the decoded
    audio, high-passed at middle C, on voiced target frames (key ``accuracy``).
    """

    target: torch.Tensor  # [1 or B, frames] int64 in -1..11
    temperature: float = 1.0
    name: ClassVar[str] = "melody"

    def __post_init__(self) -> None:
        t = self.target
        t = t.detach().cpu() if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                raise ValueError("melody target contains NaN or infinite values")
            if (t != t.round()).any():
                raise ValueError("melody target must hold integer pitch classes (0..11, -1 = rest)")
        t = t.long()
        t = t[None] if t.ndim == 1 else t
        if t.ndim != 2:
            raise ValueError(f"melody target must be [T] or [B, T], got shape {tuple(t.shape)}")
        if ((t < -1) | (t > 11)).any():
            raise ValueError(f"melody target values must be pitch classes 0..11 or -1 (rest), got "
                             f"{sorted(set(t[(t < -1) | (t > 11)].tolist()))[:5]}")
        _check_frames(t.shape[-1], self.frames, "melody target")
        empty = [i for i in range(len(t)) if not (t[i] >= 0).any()]
        if empty:
            raise ValueError(f"melody target has no voiced frame (all -1 = rest) in example(s) {empty}")
        object.__setattr__(self, "target", t)

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return chroma(self.check(mel), self.cfg, self.temperature)

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(_chroma_logits(self.check(mel), self.cfg, self.temperature), dim=1)
        y = _batch(self.target, len(mel), "melody target").to(mel.device)
        voiced = (y >= 0).to(logp.dtype)  # [B, frames]
        nll = -logp.gather(1, y.clamp_min(0)[:, None])[:, 0]  # [B, frames]
        return (nll * voiced).sum(-1) / voiced.sum(-1)

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        top = torch.from_numpy(librosa_chroma(wave_np(wave, self.cfg, self.frames), self.cfg).argmax(1))
        y = _batch(self.target, len(top), "melody target")
        voiced = y >= 0
        hits = ((top == y) & voiced).sum(-1).float() / voiced.sum(-1)
        return {"accuracy": [float(h) for h in hits]}

    def describe(self) -> str:
        voiced = float((self.target >= 0).float().mean())
        return (f"melody: chroma cross-entropy vs {len(self.target)} pitch-class sequence(s) of "
                f"{self.frames} frames ({voiced:.0%} voiced), temperature {self.temperature:g}")


def melody_control(target: ClipLabels | Sequence[ClipLabels] | torch.Tensor | np.ndarray,
                   cfg: MelConfig, temperature: float = 1.0) -> MelodyControl:
    """Melody control from procedural labels (their ``pitch_class``), a list of them (one per
    example), or pitch classes ``[frames]`` / ``[B, frames]`` (-1 = rest), e.g. from
    :func:`pitch_classes_from_mel` of any reference clip's mel."""
    if isinstance(target, ClipLabels):
        target = [target]
    if isinstance(target, (list, tuple)) and target and isinstance(target[0], ClipLabels):
        if any(lab.pitch_class is None for lab in target):
            raise ValueError("these labels have no pitch_class (unknown melody); use "
                             "pitch_classes_from_mel on the clip's mel instead")
        target = np.stack([lab.pitch_class for lab in target]).astype(np.int64)
    t = torch.as_tensor(np.asarray(target)) if not isinstance(target, torch.Tensor) else target
    if t.ndim == 0 or t.shape[-1] == 0:
        raise ValueError(f"melody target must be [T] or [B, T] with T > 0, got shape {tuple(t.shape)}")
    return MelodyControl(cfg, t.shape[-1], t, temperature)
