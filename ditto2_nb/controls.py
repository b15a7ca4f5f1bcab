"""Controls for inference-time noise optimisation: a differentiable feature, a target, a loss.

A control ``c`` (see :class:`Control`) turns a generated normalised mel ``[B, M, T]`` into

* ``c.feature(mel)``  -- the differentiable feature ``f(x_0)`` (shape depends on the control);
* ``c.loss(mel)``     -- the per-example loss ``L(f(x_0), y)`` ``[B]`` (sum it to optimise a batch in
  which every example may have its own target);
* ``c.evaluate(wave)`` -- the *same property measured on decoded audio* ``[B, L]`` with librosa (not
  differentiable, not the loss): ``{metric: [one float per example]}``;
* ``c.describe()``    -- one readable line.

Targets are ``[T]``-shaped (shared by the batch) or ``[B, T]``-shaped (one per example); a target
batch of 1 broadcasts. The controls of the paper:

============  ===============================================  ================================
control       feature ``f`` on the mel                         target ``y`` / loss
============  ===============================================  ================================
intensity     frame energy (dB) smoothed over ~1 s ``[B, T]``  dB curve; MSE (dB^2)
melody        12-bin chroma, softmax per frame ``[B, 12, T]``  pitch class per frame; cross-entropy
structure     self-similarity of pooled spectra ``[B, S, S]``  block matrix from "ABA"; MSE
inpainting    the mel outside a gap                            reference mel; masked MSE
outpainting   the first ``o`` frames                           last ``o`` frames of a reference
looping       last ``o`` frames minus first ``o`` frames       zero; MSE (gradients flow both ways)
composite     every term's feature                             weighted sum of the terms' losses
============  ===============================================  ================================

The two plain features :func:`intensity` and :func:`chroma` are also used by the distillation
benchmark (trajectory consistency).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .audio.analysis import MIDDLE_C_HZ, librosa_chroma, librosa_mel_power, reanalyse_mel, wave_np
from .audio.mel import check_mel, mel_filterbank, norm_to_power
from .core.config import MelConfig
from .data.labels import ClipLabels

__all__ = [
    "INTENSITY_SHAPES",
    "Control",
    "CompositeControl",
    "IntensityControl",
    "LoopControl",
    "MIDDLE_C_HZ",
    "MaskedMelControl",
    "MelodyControl",
    "StructureControl",
    "chroma",
    "chroma_agreement",
    "chroma_matrix",
    "composite",
    "continuity",
    "frame_energy_db",
    "from_points",
    "inpaint_control",
    "intensity",
    "intensity_control",
    "intensity_target",
    "librosa_chroma",
    "loop_control",
    "mel_centre_hz",
    "melody_control",
    "outpaint_control",
    "pitch_classes_from_mel",
    "reanalyse_mel",
    "self_similarity",
    "structure_control",
    "structure_target",
]

# ============================================================================ plain features


def frame_energy_db(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Total mel power per frame in dB: ``[B, M, T] -> [B, T]``."""
    power = norm_to_power(mel, cfg)
    return 10.0 * torch.log10(power.sum(1) + 1e-10)


def _smooth(e: torch.Tensor, cfg: MelConfig, smooth_s: float) -> torch.Tensor:
    """Centred moving average of ``smooth_s`` seconds (odd width, replicated edges): ``[B, T]``."""
    e = e[:, None]  # [B, 1, T]
    k = max(1, int(round(smooth_s * cfg.sample_rate / cfg.hop_length)) | 1)  # odd width
    k = min(k, 2 * e.shape[-1] - 1) | 1
    e = F.pad(e, (k // 2, k // 2), mode="replicate")
    return F.avg_pool1d(e, k, stride=1)[:, 0]


def intensity(mel: torch.Tensor, cfg: MelConfig, smooth_s: float = 1.0) -> torch.Tensor:
    """Frame energy in dB smoothed by a centred moving average of ``smooth_s`` seconds.

    Shapes: ``[B, M, T] -> [B, T]``. Edges are padded by replication.
    """
    return _smooth(frame_energy_db(mel, cfg), cfg, smooth_s)


def mel_centre_hz(cfg: MelConfig) -> torch.Tensor:
    """Centre frequency of each mel bin (Hz), ``[M]``."""
    fb = mel_filterbank(cfg)  # [F, M]
    freqs = torch.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    return (fb * freqs[:, None]).sum(0) / fb.sum(0).clamp_min(1e-8)


def _tone_mel_response(hz: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power of one Hann-windowed frame of a unit sine at each frequency: ``[P] -> [P, M]``."""
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
    hz = 440.0 * 2.0 ** ((pitch[:, None] + detune[None] - 69.0) / 12.0)  # [P, D]
    resp = _tone_mel_response(hz.reshape(-1), cfg).reshape(len(pitch), len(detune), -1)
    template = torch.einsum("d,pdm->pm", weight, resp)  # [P, M]
    template = template / template.norm(dim=1, keepdim=True).clamp_min(1e-30)
    out = torch.zeros(12, cfg.n_mels, dtype=torch.float64)
    out.index_add_(0, (pitch.long() % 12), template)
    return out.float()


def chroma_matrix(cfg: MelConfig, f_low: float = MIDDLE_C_HZ, f_high: float = 2100.0,
                  width_semitones: float = 0.75) -> torch.Tensor:
    """Pitch-class templates over the mel bins ``[12, M]`` for pitches between ``f_low`` and ``f_high``.

    Row ``c`` sums, over every pitch of class ``c`` in the band (middle C to C7 by default: the
    high-pass at middle C), the unit-norm mel response of a sine at that pitch (a Hann-windowed STFT
    frame through the filterbank), averaged over detunings of +-0.5 semitone with a Gaussian of
    ``width_semitones``. ``chroma_matrix @ mel_power`` is then a matched filter: with 64 mels a bin
    spans up to ~3 semitones near middle C, and the *pattern* across overlapping bins still
    identifies the pitch (a pure tone's argmax is its pitch class for every MIDI pitch 60-96).
    """
    return _chroma_matrix(cfg, float(f_low), float(f_high), float(width_semitones)).clone()


def _chroma_energy(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power gathered into pitch classes ``[B, M, T] -> [B, 12, T]``."""
    power = norm_to_power(mel, cfg)
    matrix = _chroma_matrix(cfg, MIDDLE_C_HZ, 2100.0, 0.75).to(mel.device, power.dtype)
    return torch.einsum("cm,bmt->bct", matrix, power)


def _chroma_logits(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Logits of :func:`chroma`: ``log10(energy) / temperature`` ``[B, 12, T]``."""
    return torch.log10(_chroma_energy(mel, cfg) + 1e-10) / temperature


def chroma(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Per-frame pitch-class distribution ``[B, M, T] -> [B, 12, T]`` (softmax over log energy)."""
    return torch.softmax(_chroma_logits(mel, cfg, temperature), dim=1)


def chroma_agreement(mel_a: torch.Tensor, mel_b: torch.Tensor, cfg: MelConfig) -> float:
    """Fraction of frames whose top-1 chroma agrees between two mel batches."""
    return float((chroma(mel_a, cfg).argmax(1) == chroma(mel_b, cfg).argmax(1)).float().mean())


def self_similarity(mel: torch.Tensor, cfg: MelConfig, segments: int,
                    sharpness: float = 8.0) -> torch.Tensor:
    """Self-similarity matrix of time-pooled spectral shapes ``[B, M, T] -> [B, S, S]``.

    The mel is average-pooled into ``S = segments`` equal windows, each window's mean over the mel
    bins is removed (a loudness-free spectral shape, like MFCCs without c0, so structure does not
    fight an intensity control), and entry ``(i, j)`` is ``((1 + cos_ij) / 2) ** sharpness``:
    in ``[0, 1]``, about 1 for repeated material and sharpened so that different sections of the
    same instrument fall towards 0.
    """
    x = F.adaptive_avg_pool1d(mel, segments)  # [B, M, S]
    x = F.normalize(x - x.mean(1, keepdim=True), dim=1, eps=1e-6)
    cos = torch.einsum("bmi,bmj->bij", x, x)
    return ((1.0 + cos) / 2.0).clamp(0.0, 1.0) ** sharpness


def _interior_frames(frames: int, cfg: MelConfig) -> torch.Tensor:
    """``[T]`` bool: frames whose centred analysis window lies inside the clip (no edge padding)."""
    t = torch.arange(frames)
    half = cfg.n_fft // 2
    return (t * cfg.hop_length >= half) & (t * cfg.hop_length + half <= frames * cfg.hop_length)


def continuity(mel: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Jump across frame pairs relative to the clip's typical frame-to-frame change ``[B, P]``.

    For each pair ``(a, b)``: ``||m[:, b] - m[:, a]||_2 / median_t ||m[:, t+1] - m[:, t]||_2``.
    About 1 for a seamless join; a splice of unrelated material gives several times that.
    """
    flux = (mel[..., 1:] - mel[..., :-1]).norm(dim=1)  # [B, T-1]
    median = flux.median(dim=-1).values.clamp_min(1e-6)  # [B]
    jumps = [(mel[..., b] - mel[..., a]).norm(dim=1) for a, b in pairs]  # P x [B]
    return torch.stack(jumps, dim=-1) / median[:, None] if jumps else mel.new_zeros(len(mel), 0)


# ============================================================================ the interface


def _per_example(x: torch.Tensor) -> list[float]:
    return [float(v) for v in x.reshape(len(x), -1).mean(-1)]


def _batch(target: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    """Broadcast a target batch of 1 to ``batch``; any other mismatch is an error."""
    if len(target) not in (1, batch):
        raise ValueError(f"{what} has a batch of {len(target)} targets but the mel/audio batch is {batch}; "
                         "give one target or one per example")
    return target.expand(batch, *target.shape[1:])


@dataclass(frozen=True, eq=False)
class Control:
    """Base class: ``cfg`` (mel settings) and ``frames`` (``T`` of the mels it accepts).

    Subclasses implement :meth:`feature`, :meth:`loss` (``[B]``), :meth:`evaluate` and
    :meth:`describe`. Calling a control is its loss.
    """

    cfg: MelConfig
    frames: int
    name: ClassVar[str] = "control"

    def check(self, mel: torch.Tensor) -> torch.Tensor:
        """Raise a ``ValueError`` unless ``mel`` is ``[B, M, frames]``."""
        if not isinstance(mel, torch.Tensor):
            raise ValueError(f"{self.name}: mel must be a torch.Tensor, got {type(mel).__name__}")
        if mel.ndim == 3 and mel.shape[1] == self.cfg.n_mels and mel.shape[2] != self.frames:
            raise ValueError(f"{self.name}: the target has {self.frames} frames but the mel has "
                             f"{mel.shape[2]} (mel must be [B, {self.cfg.n_mels}, {self.frames}])")
        if mel.ndim != 3 or mel.shape[1] != self.cfg.n_mels:
            hint = " (add a batch dimension: mel[None])" if mel.ndim == 2 else ""
            raise ValueError(f"{self.name}: mel must be [B, {self.cfg.n_mels}, {self.frames}], got shape "
                             f"{tuple(mel.shape)}{hint}")
        return mel

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        return self.loss(mel)


def _finite_float_target(target: torch.Tensor | np.ndarray | Sequence[float], what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(target, dtype=np.float32) if not isinstance(target, torch.Tensor)
                        else target.detach().float().cpu())
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[-1] == 0:
        raise ValueError(f"{what} must be [T] or [B, T], got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return t


def _check_frames(target_frames: int, frames: int, what: str) -> None:
    if target_frames != frames:
        raise ValueError(f"{what} has {target_frames} frames but the mel has {frames} frames")


# ============================================================================ intensity

INTENSITY_SHAPES: dict[str, tuple[tuple[float, str], ...]] = {
    "ramp_up": ((0.0, "lo"), (1.0, "hi")),
    "ramp_down": ((0.0, "hi"), (1.0, "lo")),
    "up_down": ((0.0, "lo"), (0.5, "hi"), (1.0, "lo")),  # a peak in the middle
    "down_up": ((0.0, "hi"), (0.5, "lo"), (1.0, "hi")),  # a dip in the middle
    "jump_up": ((0.0, "lo"), (0.5, "lo"), (0.5, "hi"), (1.0, "hi")),
    "jump_down": ((0.0, "hi"), (0.5, "hi"), (0.5, "lo"), (1.0, "lo")),
    "flat": ((0.0, "mid"), (1.0, "mid")),
}


def from_points(points: Sequence[tuple[float, float]], frames: int) -> torch.Tensor:
    """Piecewise-linear curve ``[T]`` through ``(fraction of the clip, value)`` points.

    Frame ``t`` sits at fraction ``t / (T - 1)``. Fractions must lie in [0, 1] and never decrease;
    a repeated fraction is a jump (the later value holds from that instant on). Values before the
    first / after the last point are held. Example: ``from_points([(0, -30), (0.5, -10), (1, -20)],
    128)``.
    """
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    if len(points) == 0:
        raise ValueError("from_points needs at least one (fraction, value) point")
    xp, fp = (torch.tensor(v, dtype=torch.float64) for v in zip(*points))
    if not (torch.isfinite(xp).all() and torch.isfinite(fp).all()):
        raise ValueError(f"points contain NaN or infinite values: {list(points)}")
    if (xp < 0).any() or (xp > 1).any():
        raise ValueError(f"point fractions must lie in [0, 1] (fractions of the clip), got {xp.tolist()}")
    if (xp[1:] < xp[:-1]).any():
        raise ValueError(f"point fractions must not decrease, got {xp.tolist()}")
    if len(xp) == 1:
        return fp.float().expand(frames).clone()
    u = torch.linspace(0.0, 1.0, frames, dtype=torch.float64) if frames > 1 else xp.new_zeros(1)
    hi = torch.searchsorted(xp, u, right=True).clamp(1, len(xp) - 1)
    lo = hi - 1
    w = ((u - xp[lo]) / (xp[hi] - xp[lo]).clamp_min(1e-12)).clamp(0.0, 1.0)
    return (fp[lo] + w * (fp[hi] - fp[lo])).float()


def intensity_target(shape: str, frames: int, lo: float = -30.0, hi: float = -10.0) -> torch.Tensor:
    """A named piecewise-linear dB curve ``[T]`` between ``lo`` and ``hi`` dB.

    Shapes (:data:`INTENSITY_SHAPES`): ``ramp_up``, ``ramp_down``, ``up_down`` (peak at the
    middle), ``down_up`` (dip), ``jump_up`` / ``jump_down`` (step at the middle), ``flat`` (at the
    midpoint ``(lo + hi) / 2``). Procedural clips span about -37 to -10 dB on this scale.
    """
    if shape not in INTENSITY_SHAPES:
        raise ValueError(f"unknown intensity shape {shape!r}; choose one of {sorted(INTENSITY_SHAPES)} "
                         "or build a curve with from_points")
    level = {"lo": lo, "hi": hi, "mid": (lo + hi) / 2}
    return from_points([(u, level[k]) for u, k in INTENSITY_SHAPES[shape]], frames)


@dataclass(frozen=True, eq=False)
class IntensityControl(Control):
    """Intensity: ``f`` = :func:`intensity` ``[B, T]`` (dB), ``y`` = dB curve ``[1 or B, T]``, MSE.

    Evaluation: the same smoothed frame energy from librosa's mel power of the decoded audio, MSE
    (dB^2) against the target (key ``mse_db2``).
    """

    target: torch.Tensor  # [1 or B, T] dB
    smooth_s: float = 1.0
    label: str = "custom"
    name: ClassVar[str] = "intensity"

    def __post_init__(self) -> None:
        t = _finite_float_target(self.target, "intensity target")
        _check_frames(t.shape[-1], self.frames, "intensity target")
        object.__setattr__(self, "target", t)

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return intensity(self.check(mel), self.cfg, self.smooth_s)

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        f = self.feature(mel)
        y = _batch(self.target, len(f), "intensity target").to(f)
        return (f - y).pow(2).mean(-1)

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        power = librosa_mel_power(wave_np(wave, self.cfg, self.frames), self.cfg)  # [B, M, T]
        e = torch.from_numpy(10.0 * np.log10(power.sum(1) + 1e-10)).float()
        feat = _smooth(e, self.cfg, self.smooth_s)
        y = _batch(self.target, len(feat), "intensity target")
        return {"mse_db2": _per_example((feat - y).pow(2))}

    def describe(self) -> str:
        t = self.target
        return (f"intensity: {self.smooth_s:g} s-smoothed frame energy vs a {self.label} curve "
                f"({float(t.min()):.0f} to {float(t.max()):.0f} dB, {self.frames} frames); MSE in dB^2")


def intensity_control(target: torch.Tensor | np.ndarray | Sequence[float] | str, cfg: MelConfig, *,
                      frames: int | None = None, lo: float = -30.0, hi: float = -10.0,
                      smooth_s: float = 1.0) -> IntensityControl:
    """Intensity control from a dB curve ``[T]`` / ``[B, T]``, a shape name, or a reference mel.

    * a string such as ``"ramp_up"``: :func:`intensity_target` between ``lo`` and ``hi`` dB on
      ``frames`` frames (default ``cfg.frames``);
    * a 3-D tensor ``[B, M, T]``: a reference mel; the target is its own :func:`intensity` curve;
    * anything else: the dB curve itself.
    """
    label = "custom"
    if isinstance(target, str):
        label = target
        target = intensity_target(target, frames or cfg.frames, lo, hi)
    elif isinstance(target, torch.Tensor) and target.ndim == 3:
        label = "reference"
        with torch.no_grad():
            target = intensity(check_mel(target.detach().float().cpu(), cfg), cfg, smooth_s)
    t = _finite_float_target(target, "intensity target")
    return IntensityControl(cfg, frames or t.shape[-1], t, smooth_s, label)


# ============================================================================ melody


def pitch_classes_from_mel(mel: torch.Tensor, cfg: MelConfig, rest_db: float = -40.0) -> torch.Tensor:
    """Top-1 chroma per frame of a reference mel ``[B, M, T] -> [B, T]`` (int64, -1 = rest).

    A frame is a rest when its energy above middle C is more than ``-rest_db`` dB below the
    clip's loudest frame.
    """
    mel = check_mel(mel.detach().float(), cfg)
    energy = _chroma_energy(mel, cfg)  # [B, 12, T]
    level = 10 * torch.log10(energy.sum(1) + 1e-10)  # [B, T]
    rest = level < level.max(-1, keepdim=True).values + rest_db
    return torch.where(rest, -1, energy.argmax(1))


@dataclass(frozen=True, eq=False)
class MelodyControl(Control):
    """Melody: ``f`` = :func:`chroma` ``[B, 12, T]``, ``y`` = pitch class per frame ``[1 or B, T]``.

    Loss: cross-entropy ``-log f[y_t, t]`` averaged over the voiced frames (``y_t >= 0``; -1 =
    rest is ignored). Evaluation: frame accuracy of the top-1 librosa STFT chroma of the decoded
    audio, high-passed at middle C, on voiced target frames (key ``accuracy``).
    """

    target: torch.Tensor  # [1 or B, T] int64 in -1..11
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
        voiced = (y >= 0).to(logp.dtype)  # [B, T]
        nll = -logp.gather(1, y.clamp_min(0)[:, None])[:, 0]  # [B, T]
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
    example), or pitch classes ``[T]`` / ``[B, T]`` (-1 = rest), e.g. from
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


# ============================================================================ structure


def _segments(structure: str, frames: int, cfg: MelConfig, pool_s: float) -> int:
    """Number of pooled windows ``S``: about ``pool_s`` seconds each, at least one per section."""
    n = max(len(structure), 2, round(frames * cfg.hop_length / cfg.sample_rate / pool_s))
    if n > frames:
        raise ValueError(f"structure {structure!r} needs {n} pooled windows but the clip has only "
                         f"{frames} frames")
    return n


def _check_structure(structure: str) -> str:
    if not isinstance(structure, str) or not structure:
        raise ValueError("structure must be a non-empty string of letters A-Z, such as 'ABA'")
    if not re.fullmatch(r"[A-Z]+", structure):
        bad = sorted(set(re.sub(r"[A-Z]", "", structure)))
        raise ValueError(f"structure {structure!r} has unknown letter(s) {bad}; use capital letters A-Z "
                         "(same letter = same material)")
    return structure


def structure_target(structure: str, frames: int, segments: int) -> torch.Tensor:
    """Block self-similarity target ``[S, S]`` from a string such as ``"ABA"``.

    The clip is cut into ``len(structure)`` equal sections; frame ``t`` belongs to section
    ``floor(t * n / T)``. Each of the ``S`` pooled windows gets the fraction of its frames in each
    letter, ``p_i``, and the target is ``cos(p_i, p_j)``: 1 for the same letter, 0 for different
    letters, in between for a window that straddles a boundary. ``"AABB"`` has the same blocks as
    ``"AB"`` (equal sections, same letter = same material).
    """
    _check_structure(structure)
    letters = sorted(set(structure))
    section = torch.div(torch.arange(frames) * len(structure), frames, rounding_mode="floor")
    idx = torch.tensor([letters.index(c) for c in structure])[section]  # [T]
    onehot = F.one_hot(idx, len(letters)).float().T[None]  # [1, K, T]
    p = F.normalize(F.adaptive_avg_pool1d(onehot, segments)[0], dim=0)  # [K, S]
    return p.T @ p


@dataclass(frozen=True, eq=False)
class StructureControl(Control):
    """Structure: ``f`` = :func:`self_similarity` ``[B, S, S]``, ``y`` = block matrix, MSE.

    Evaluation: the same SSM from librosa's mel of the decoded audio, MSE to the target
    (key ``ssm_mse``).
    """

    structure: tuple[str, ...]  # one string, or one per example
    pool_s: float = 0.25
    sharpness: float = 8.0
    name: ClassVar[str] = "structure"

    def __post_init__(self) -> None:
        s = (self.structure,) if isinstance(self.structure, str) else tuple(self.structure)
        if not s:
            raise ValueError("structure must be a non-empty string of letters A-Z, such as 'ABA'")
        for x in s:
            _check_structure(x)
        if self.pool_s <= 0 or self.sharpness <= 0:
            raise ValueError(f"pool_s and sharpness must be positive, got {self.pool_s}, {self.sharpness}")
        object.__setattr__(self, "structure", s)
        self.segments  # noqa: B018 - validates that every structure fits the clip

    @property
    def segments(self) -> int:
        return max(_segments(s, self.frames, self.cfg, self.pool_s) for s in self.structure)

    @property
    def target(self) -> torch.Tensor:
        """Target SSMs ``[1 or B, S, S]``."""
        return torch.stack([structure_target(s, self.frames, self.segments) for s in self.structure])

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return self_similarity(self.check(mel), self.cfg, self.segments, self.sharpness)

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        f = self.feature(mel)
        y = _batch(self.target, len(f), "structure target").to(f)
        return (f - y).pow(2).mean((1, 2))

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        mel = reanalyse_mel(wave_np(wave, self.cfg, self.frames), self.cfg)
        f = self_similarity(mel, self.cfg, self.segments, self.sharpness)
        y = _batch(self.target, len(f), "structure target")
        return {"ssm_mse": _per_example((f - y).pow(2))}

    def describe(self) -> str:
        s = "/".join(self.structure)
        return (f"structure: {self.segments}x{self.segments} self-similarity of ~{self.pool_s:g} s windows "
                f"vs the block matrix of {s!r}; MSE")


def structure_control(structure: str | Sequence[str], cfg: MelConfig, frames: int | None = None,
                      pool_s: float = 0.25, sharpness: float = 8.0) -> StructureControl:
    """Structure control for ``"ABA"``-style strings (one, or one per example) on ``frames``
    (default ``cfg.frames``) frames."""
    s = (structure,) if isinstance(structure, str) else tuple(structure)
    return StructureControl(cfg, frames or cfg.frames, s, pool_s, sharpness)


# ============================================================================ in/outpainting, looping


def _to_frames(x: float, unit: str, cfg: MelConfig) -> int:
    if unit == "frames":
        if float(x) != int(x):
            raise ValueError(f"a frame index must be an integer, got {x}")
        return int(x)
    if unit == "seconds":
        return int(round(float(x) * cfg.sample_rate / cfg.hop_length))
    raise ValueError(f"unit must be 'seconds' or 'frames', got {unit!r}")


def _masked_mse(mel: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(mel - ref)^2`` over the frames where ``mask`` ``[T]`` is true: ``[B]``."""
    return (mel - ref)[..., mask].pow(2).mean((1, 2))


@dataclass(frozen=True, eq=False)
class MaskedMelControl(Control):
    """In/outpainting: ``f`` = the mel on the kept frames ``[B, M, K]``, ``y`` = the reference there.

    ``reference`` ``[1 or B, M, T]`` is aligned with the generated clip (only ``mask`` frames
    matter); ``pairs`` are the ``(a, b)`` frame pairs across each boundary between kept and free
    frames. Evaluation on decoded audio (librosa mel): ``mse`` on the kept frames and
    ``jump_ratio@b`` (:func:`continuity`) at each boundary.
    """

    reference: torch.Tensor  # [1 or B, M, T] normalised mel
    mask: torch.Tensor  # [T] bool: frames that must match the reference
    pairs: tuple[tuple[int, int], ...] = ()
    kind: str = "inpainting"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.kind

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return self.check(mel)[..., self.mask.to(mel.device)]

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        mel = self.check(mel)
        ref = _batch(self.reference, len(mel), f"{self.kind} reference").to(mel)
        return _masked_mse(mel, ref, self.mask.to(mel.device))

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        mel = reanalyse_mel(wave_np(wave, self.cfg, self.frames), self.cfg)
        ref = _batch(self.reference, len(mel), f"{self.kind} reference")
        out = {"mse": [float(v) for v in _masked_mse(mel, ref, self.mask)]}
        jumps = continuity(mel, self.pairs)
        for k, (_, b) in enumerate(self.pairs):
            out[f"jump_ratio@{b}"] = [float(v) for v in jumps[:, k]]
        return out

    def describe(self) -> str:
        free = (~self.mask).nonzero()[:, 0]
        return (f"{self.kind}: masked mel MSE on {int(self.mask.sum())} of {self.frames} frames; frames "
                f"{int(free.min())}..{int(free.max())} are free")


def _reference(reference: torch.Tensor, cfg: MelConfig, what: str) -> torch.Tensor:
    if not isinstance(reference, torch.Tensor):
        raise ValueError(f"{what} must be a normalised mel tensor [M, T] or [B, M, T]")
    return check_mel(reference.detach().float().cpu(), cfg)


def inpaint_control(reference: torch.Tensor, gap: tuple[float, float], cfg: MelConfig,
                    unit: str = "seconds") -> MaskedMelControl:
    """Inpainting: keep the reference mel ``[M, T]`` / ``[B, M, T]`` outside ``gap = (t0, t1)``.

    ``gap`` is in ``unit`` ("seconds" or "frames"); frames ``t0 <= t < t1`` are regenerated. The
    gap must lie inside the clip and leave some frames to keep.
    """
    ref = _reference(reference, cfg, "inpainting reference")
    frames = ref.shape[-1]
    t0, t1 = (_to_frames(x, unit, cfg) for x in gap)
    if not 0 <= t0 < t1 <= frames:
        raise ValueError(f"gap {tuple(gap)} {unit} = frames [{t0}, {t1}) is outside the clip of {frames} "
                         "frames or empty; need 0 <= t0 < t1 <= T")
    if t0 == 0 and t1 == frames:
        raise ValueError(f"gap {tuple(gap)} {unit} covers the whole clip: nothing is left to keep")
    mask = torch.ones(frames, dtype=torch.bool)
    mask[t0:t1] = False
    pairs = tuple(p for p in ((t0 - 1, t0), (t1 - 1, t1)) if 0 <= p[0] and p[1] < frames)
    return MaskedMelControl(cfg, frames, ref, mask, pairs, "inpainting")


def _overlap(overlap: float, unit: str, frames: int, cfg: MelConfig) -> int:
    o = _to_frames(overlap, unit, cfg)
    if o < 1:
        raise ValueError(f"overlap {overlap} {unit} is {o} frames; it must be at least 1 frame")
    if o >= frames:
        raise ValueError(f"overlap {overlap} {unit} = {o} frames must be shorter than the clip "
                         f"({frames} frames)")
    return o


def outpaint_control(reference: torch.Tensor, cfg: MelConfig, overlap: float = 1.0,
                     unit: str = "seconds", frames: int | None = None) -> MaskedMelControl:
    """Outpainting (continuation): the first ``o`` frames of the generated clip must equal the last
    ``o`` frames of ``reference`` ``[M, T_ref]`` / ``[B, M, T_ref]``; frames ``o..T-1`` are free.

    ``frames`` is the generated clip's ``T`` (default ``cfg.frames``); ``overlap`` is in ``unit``.
    The continued piece is ``reference ++ generated[o:]``; ``jump_ratio@o`` measures that seam.
    """
    ref = _reference(reference, cfg, "outpainting reference")
    frames = frames or cfg.frames
    o = _overlap(overlap, unit, frames, cfg)
    if o > ref.shape[-1]:
        raise ValueError(f"overlap of {o} frames is longer than the reference ({ref.shape[-1]} frames)")
    aligned = torch.full((len(ref), cfg.n_mels, frames), -1.0)
    aligned[..., :o] = ref[..., -o:]
    mask = torch.zeros(frames, dtype=torch.bool)
    mask[:o] = True
    return MaskedMelControl(cfg, frames, aligned, mask, ((o - 1, o),), "outpainting")


@dataclass(frozen=True, eq=False)
class LoopControl(Control):
    """Looping: ``f`` = ``mel[..., T-o:] - mel[..., :o]`` ``[B, M, o]``, ``y`` = 0, MSE.

    Both ends receive gradients. The loop body is frames ``0..T-o-1``: once the ends match, playing
    the body on repeat sounds like the clip itself. Evaluation on decoded audio: ``mse`` between the
    two ends of librosa's mel (frames whose analysis window runs off the clip are skipped: their
    padding is not music), and ``jump_ratio@loop``, the :func:`continuity` at the seam of the
    audio loop body played twice (body end -> body start).
    """

    overlap: int  # o, in frames
    name: ClassVar[str] = "looping"

    def __post_init__(self) -> None:
        _overlap(self.overlap, "frames", self.frames, self.cfg)

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        mel = self.check(mel)
        return mel[..., self.frames - self.overlap:] - mel[..., : self.overlap]

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        return self.feature(mel).pow(2).mean((1, 2))

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        cfg, T, o = self.cfg, self.frames, self.overlap
        w = wave_np(wave, cfg, T)
        mel = reanalyse_mel(w, cfg)
        inside = _interior_frames(T, cfg)
        keep = inside[:o] & inside[T - o:]
        keep = keep if keep.any() else torch.ones(o, dtype=torch.bool)
        diff = (mel[..., T - o:] - mel[..., :o])[..., keep]
        body = w[:, : (T - o) * cfg.hop_length]
        repeats = max(2, math.ceil(2 * cfg.n_fft / body.shape[-1]))
        played = reanalyse_mel(np.tile(body, (1, repeats)), cfg)
        seam = continuity(played, [(T - o - 1, T - o)])[:, 0]
        return {"mse": _per_example(diff.pow(2)), "jump_ratio@loop": [float(v) for v in seam]}

    def describe(self) -> str:
        return (f"looping: last {self.overlap} frames must equal the first {self.overlap} of the same clip "
                f"({self.frames} frames); MSE")


def loop_control(cfg: MelConfig, overlap: float = 0.5, unit: str = "seconds",
                 frames: int | None = None) -> LoopControl:
    """Looping control on clips of ``frames`` (default ``cfg.frames``) with ``overlap`` in ``unit``."""
    frames = frames or cfg.frames
    return LoopControl(cfg, frames, _overlap(overlap, unit, frames, cfg))


# ============================================================================ composite


@dataclass(frozen=True, eq=False)
class CompositeControl(Control):
    """Weighted sum ``sum_i w_i L_i`` of controls on the same mel; ``feature`` is a dict of the
    terms' features and ``evaluate`` merges their metrics as ``"<term>/<metric>"``."""

    terms: tuple[tuple[float, Control], ...]
    name: ClassVar[str] = "composite"

    @property
    def keys(self) -> list[str]:
        """Unique term names (``melody``, ``melody#2``...)."""
        out: list[str] = []
        for _, c in self.terms:
            k, n = c.name, 2
            while k in out:
                k, n = f"{c.name}#{n}", n + 1
            out.append(k)
        return out

    def feature(self, mel: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {k: c.feature(mel) for k, (_, c) in zip(self.keys, self.terms)}

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        return sum(w * c.loss(mel) for w, c in self.terms)

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        return {f"{k}/{m}": v for k, (_, c) in zip(self.keys, self.terms)
                for m, v in c.evaluate(wave).items()}

    def describe(self) -> str:
        return "composite: " + " + ".join(f"{w:g} x [{c.describe()}]" for w, c in self.terms)


def composite(terms: Sequence[tuple[float, Control]]) -> CompositeControl:
    """``composite([(1.0, c1), (0.5, c2)])``: loss ``1.0 * c1.loss + 0.5 * c2.loss`` ``[B]``.

    Weights must be positive and finite; all terms must share the mel settings and frame count.
    """
    terms = tuple((float(w), c) for w, c in terms)
    if not terms:
        raise ValueError("composite needs at least one (weight, control) term")
    for w, c in terms:
        if not isinstance(c, Control):
            raise ValueError(f"composite terms must be (weight, Control) pairs, got a {type(c).__name__}")
        if not np.isfinite(w) or w <= 0:
            raise ValueError(f"composite weights must be positive and finite, got {w} for {c.name}")
    frames = {c.frames for _, c in terms}
    if len(frames) > 1 or len({c.cfg for _, c in terms}) > 1:
        raise ValueError("composite terms must share the mel config and frame count, got frames "
                         f"{sorted(frames)}")
    return CompositeControl(terms[0][1].cfg, frames.pop(), terms)
