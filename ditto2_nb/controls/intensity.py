"""Intensity: frame energy in dB smoothed over about a second, against a dB curve (MSE, dB^2).

Targets are named shapes (:data:`INTENSITY_SHAPES`), piecewise-linear curves
(:func:`from_points`) or a reference mel's own curve. :func:`intensity` is also the plain feature
the distillation benchmark compares trajectories with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.analysis import librosa_mel_power, wave_np
from ..audio.mel import check_mel, norm_to_power
from ..core.config import MelConfig
from .base import Control, _batch, _check_frames, _finite_float_target, _per_example


def frame_energy_db(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Total mel power per frame in dB: ``[B, n_mels, frames] -> [B, frames]``."""
    power = norm_to_power(mel, cfg)
    return 10.0 * torch.log10(power.sum(1) + 1e-10)


def _smooth(e: torch.Tensor, cfg: MelConfig, smooth_s: float) -> torch.Tensor:
    """Centred moving average of ``smooth_s`` seconds (odd width, replicated edges): ``[B, frames]``."""
    e = e[:, None]  # [B, 1, frames]
    k = max(1, int(round(smooth_s * cfg.sample_rate / cfg.hop_length)) | 1)  # odd width
    k = min(k, 2 * e.shape[-1] - 1) | 1
    e = F.pad(e, (k // 2, k // 2), mode="replicate")
    return F.avg_pool1d(e, k, stride=1)[:, 0]


def intensity(mel: torch.Tensor, cfg: MelConfig, smooth_s: float = 1.0) -> torch.Tensor:
    """Frame energy in dB smoothed by a centred moving average of ``smooth_s`` seconds.

    Shapes: ``[B, n_mels, frames] -> [B, frames]``. Edges are padded by replication.
    """
    return _smooth(frame_energy_db(mel, cfg), cfg, smooth_s)


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
    """Piecewise-linear curve ``[frames]`` through ``(fraction of the clip, value)`` points.

    Frame ``t`` sits at fraction ``t / (frames - 1)``. Fractions must lie in [0, 1] and never decrease;
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
    """A named piecewise-linear dB curve ``[frames]`` between ``lo`` and ``hi`` dB.

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
    """Intensity: ``f`` = :func:`intensity` ``[B, frames]`` (dB), ``y`` = dB curve ``[1 or B, frames]``, MSE.

    Evaluation: the same smoothed frame energy from librosa's mel power of the decoded audio, MSE
    (dB^2) against the target (key ``mse_db2``).
    """

    target: torch.Tensor  # [1 or B, frames] dB
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
        power = librosa_mel_power(wave_np(wave, self.cfg, self.frames), self.cfg)  # [B, n_mels, frames]
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
    """Intensity control from a dB curve ``[frames]`` / ``[B, frames]``, a shape name, or a reference mel.

    * a string such as ``"ramp_up"``: :func:`intensity_target` between ``lo`` and ``hi`` dB on
      ``frames`` frames (default ``cfg.frames``);
    * a 3-D tensor ``[B, n_mels, frames]``: a reference mel; the target is its own :func:`intensity` curve;
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
