"""Editing by masks: inpainting (regenerate a gap), outpainting (continue a clip) and looping (the
end joins the start), with the continuity of the mel across each seam as their evaluation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..audio.analysis import reanalyse_mel, wave_np
from ..audio.mel import check_mel
from ..core.config import MelConfig
from .base import Control, _batch, _per_example


def _interior_frames(frames: int, cfg: MelConfig) -> torch.Tensor:
    """``[frames]`` bool: frames whose centred analysis window lies inside the clip (no edge padding)."""
    t = torch.arange(frames)
    half = cfg.n_fft // 2
    return (t * cfg.hop_length >= half) & (t * cfg.hop_length + half <= frames * cfg.hop_length)


def continuity(mel: torch.Tensor, pairs: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Jump across frame pairs relative to the clip's typical frame-to-frame change ``[B, P]``.

    For each pair ``(a, b)``: ``||m[:, b] - m[:, a]||_2 / median_t ||m[:, t+1] - m[:, t]||_2``.
    About 1 for a seamless join; a splice of unrelated material gives several times that.
    """
    flux = (mel[..., 1:] - mel[..., :-1]).norm(dim=1)  # [B, frames - 1]
    median = flux.median(dim=-1).values.clamp_min(1e-6)  # [B]
    jumps = [(mel[..., b] - mel[..., a]).norm(dim=1) for a, b in pairs]  # P x [B]
    return torch.stack(jumps, dim=-1) / median[:, None] if jumps else mel.new_zeros(len(mel), 0)


def _to_frames(x: float, unit: str, cfg: MelConfig) -> int:
    if unit == "frames":
        if float(x) != int(x):
            raise ValueError(f"a frame index must be an integer, got {x}")
        return int(x)
    if unit == "seconds":
        return int(round(float(x) * cfg.sample_rate / cfg.hop_length))
    raise ValueError(f"unit must be 'seconds' or 'frames', got {unit!r}")


def _masked_mse(mel: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(mel - ref)^2`` over the frames where ``mask`` ``[frames]`` is true: ``[B]``."""
    return (mel - ref)[..., mask].pow(2).mean((1, 2))


@dataclass(frozen=True, eq=False)
class MaskedMelControl(Control):
    """In/outpainting: ``f`` = the mel on the kept frames ``[B, n_mels, kept]``, ``y`` = the reference there.

    ``reference`` ``[1 or B, n_mels, frames]`` is aligned with the generated clip (only ``mask`` frames
    matter); ``pairs`` are the ``(a, b)`` frame pairs across each boundary between kept and free
    frames. Evaluation on decoded audio (librosa mel): ``mse`` on the kept frames and
    ``jump_ratio@b`` (:func:`continuity`) at each boundary.
    """

    reference: torch.Tensor  # [1 or B, n_mels, frames] normalised mel
    mask: torch.Tensor  # [frames] bool: frames that must match the reference
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
        raise ValueError(f"{what} must be a normalised mel tensor [n_mels, frames] or [B, n_mels, frames]")
    return check_mel(reference.detach().float().cpu(), cfg)


def inpaint_control(reference: torch.Tensor, gap: tuple[float, float], cfg: MelConfig,
                    unit: str = "seconds") -> MaskedMelControl:
    """Inpainting: keep the reference mel ``[n_mels, frames]`` / ``[B, n_mels, frames]`` outside
    ``gap = (t0, t1)``.

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
    ``o`` frames of ``reference`` ``[n_mels, ref_frames]`` / ``[B, n_mels, ref_frames]``; frames
    ``o..frames-1`` are free.

    ``frames`` is the generated clip's length in frames (default ``cfg.frames``); ``overlap`` is in ``unit``.
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
    """Looping: ``f`` = ``mel[..., frames-o:] - mel[..., :o]`` ``[B, n_mels, o]``, ``y`` = 0, MSE.

    Both ends receive gradients. The loop body is frames ``0..frames-o-1``: once the ends match, playing
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
