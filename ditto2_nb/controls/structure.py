"""Structure: the self-similarity of time-pooled spectral shapes against the block matrix of a
form such as ``"ABA"`` (MSE); evaluated on librosa's mel of the decoded audio."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.analysis import reanalyse_mel, wave_np
from ..core.config import MelConfig
from .base import Control, _batch, _per_example

FLAT_SHAPE = 1e-3  # the constant entry of a shape vector (mels in [-1, 1]: real shapes have norm ~1)


def self_similarity(mel: torch.Tensor, cfg: MelConfig, segments: int,
                    sharpness: float = 8.0) -> torch.Tensor:
    """Self-similarity matrix of time-pooled spectral shapes:
    ``[B, n_mels, frames] -> [B, segments, segments]``.

    The mel is average-pooled into ``segments`` equal windows, each window's mean over the mel
    bins is removed (a loudness-free spectral shape, like MFCCs without c0, so structure does not
    fight an intensity control), and entry ``(i, j)`` is ``((1 + cos_ij) / 2) ** sharpness``:
    in ``[0, 1]``, about 1 for repeated material and sharpened so that different sections of the
    same instrument fall towards 0. Every window is exactly similar to itself (the diagonal is 1),
    silent or spectrally flat ones included: each shape vector carries one more constant entry,
    :data:`FLAT_SHAPE`, so a flat window's shape is that entry alone (two silences: 1; a silence
    and music: about 0) while a real shape's cosines move by ~1e-7.
    """
    x = F.adaptive_avg_pool1d(mel, segments)  # [B, n_mels, segments]
    x = x - x.mean(1, keepdim=True)
    x = F.normalize(torch.cat([x, torch.full_like(x[:, :1], FLAT_SHAPE)], 1), dim=1)
    cos = torch.einsum("bmi,bmj->bij", x, x)
    return ((1.0 + cos) / 2.0).clamp(0.0, 1.0) ** sharpness


def _segments(structure: str, frames: int, cfg: MelConfig, pool_s: float) -> int:
    """Number of pooled windows (``segments``): about ``pool_s`` seconds each, at least one per section."""
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
    """Block self-similarity target ``[segments, segments]`` from a string such as ``"ABA"``.

    The clip is cut into ``len(structure)`` equal sections; frame ``t`` belongs to section
    ``floor(t * n / frames)``. Each of the ``segments`` pooled windows gets the fraction of its frames in each
    letter, ``p_i``, and the target is ``cos(p_i, p_j)``: 1 for the same letter, 0 for different
    letters, in between for a window that straddles a boundary. ``"AABB"`` has the same blocks as
    ``"AB"`` (equal sections, same letter = same material).
    """
    _check_structure(structure)
    letters = sorted(set(structure))
    section = torch.div(torch.arange(frames) * len(structure), frames, rounding_mode="floor")
    idx = torch.tensor([letters.index(c) for c in structure])[section]  # [frames]
    onehot = F.one_hot(idx, len(letters)).float().T[None]  # [1, letters, frames]
    p = F.normalize(F.adaptive_avg_pool1d(onehot, segments)[0], dim=0)  # [letters, segments]
    return p.T @ p


@dataclass(frozen=True, eq=False)
class StructureControl(Control):
    """Structure: ``f`` = :func:`self_similarity` ``[B, segments, segments]``, ``y`` = block matrix, MSE.

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
        """Target SSMs ``[1 or B, segments, segments]``."""
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
