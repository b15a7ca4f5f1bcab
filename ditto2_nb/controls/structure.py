"""Structure: the self-similarity of time-pooled spectral shapes against the block matrix of a
form such as ``"ABA"``, or against the self-similarity of a reference clip (MSE); evaluated on
librosa's mel of the decoded audio."""

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
REFERENCE_LENGTH = 2  # the neutral structure length of a reference clip's windows (see _segments)
SILENT = -0.99  # a reference whose every bin is at or below this (the -1 floor) is silent


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


def _reference_segments(frames: int, cfg: MelConfig, pool_s: float) -> int:
    """Pooled windows of a reference clip: as for a structure of :data:`REFERENCE_LENGTH` sections."""
    if frames < REFERENCE_LENGTH:
        raise ValueError(f"the reference clip has {frames} frame(s); a self-similarity needs at least "
                         f"{REFERENCE_LENGTH}")
    n = max(REFERENCE_LENGTH, round(frames * cfg.hop_length / cfg.sample_rate / pool_s))
    if n > frames:
        raise ValueError(f"pool_s={pool_s:g} s gives {n} pooled windows but the reference clip has only "
                         f"{frames} frames; use pool_s >= {cfg.hop_length / cfg.sample_rate:.4g} s (one hop)")
    return _segments("A" * REFERENCE_LENGTH, frames, cfg, pool_s)


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

    The target is either the block matrix of ``structure`` (one string, or one per example) or,
    when ``reference_ssm`` is given (``structure`` then empty), that self-similarity matrix
    ``[1 or B, segments, segments]``: the SSM of a reference clip, see
    :func:`structure_from_reference`.

    Evaluation: the same SSM from librosa's mel of the decoded audio, MSE to the target
    (key ``ssm_mse``).
    """

    structure: tuple[str, ...]  # one string, or one per example; empty with a reference_ssm
    pool_s: float = 0.25
    sharpness: float = 8.0
    reference_ssm: torch.Tensor | None = None  # [1 or B, segments, segments] in [0, 1], or None
    name: ClassVar[str] = "structure"

    def __post_init__(self) -> None:
        s = (self.structure,) if isinstance(self.structure, str) else tuple(self.structure)
        if self.reference_ssm is not None and s:
            raise ValueError(f"give either structure (got {s!r}) or reference_ssm, not both")
        if self.reference_ssm is None and not s:
            raise ValueError("structure must be a non-empty string of letters A-Z, such as 'ABA'")
        for x in s:
            _check_structure(x)
        if self.pool_s <= 0 or self.sharpness <= 0:
            raise ValueError(f"pool_s and sharpness must be positive, got {self.pool_s}, {self.sharpness}")
        object.__setattr__(self, "structure", s)
        if self.reference_ssm is not None:
            object.__setattr__(self, "reference_ssm", self._check_reference_ssm(self.reference_ssm))
        self.segments  # noqa: B018 - validates that every structure fits the clip

    def _check_reference_ssm(self, ssm) -> torch.Tensor:
        """``reference_ssm`` as a detached float32 CPU tensor ``[1 or B, S, S]``, S = :attr:`segments`."""
        if not isinstance(ssm, torch.Tensor):
            raise ValueError(f"reference_ssm must be a torch.Tensor [1 or B, S, S], got {type(ssm).__name__}")
        t = ssm.detach().float().cpu()
        t = t[None] if t.ndim == 2 else t
        s = self.segments
        if t.ndim != 3 or len(t) == 0 or t.shape[1:] != (s, s):
            raise ValueError(f"reference_ssm must be [1 or B, {s}, {s}] ({s} windows of ~{self.pool_s:g} s "
                             f"on {self.frames} frames), got shape {tuple(ssm.shape)}")
        if not torch.isfinite(t).all():
            raise ValueError("reference_ssm contains NaN or infinite values")
        lo, hi = float(t.min()), float(t.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"reference_ssm values must lie in [0, 1] (a self_similarity), "
                             f"got [{lo:.4g}, {hi:.4g}]")
        return t.clone()

    @property
    def segments(self) -> int:
        if self.reference_ssm is not None:
            return _reference_segments(self.frames, self.cfg, self.pool_s)
        return max(_segments(s, self.frames, self.cfg, self.pool_s) for s in self.structure)

    @property
    def target(self) -> torch.Tensor:
        """Target SSMs ``[1 or B, segments, segments]``."""
        if self.reference_ssm is not None:
            return self.reference_ssm
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
        if self.reference_ssm is not None:
            n = len(self.reference_ssm)
            what = "self-similarity of the reference clip" + ("s" if n > 1 else "")
        else:
            what = f"block matrix of {'/'.join(self.structure)!r}"
        return (f"structure: {self.segments}x{self.segments} self-similarity of ~{self.pool_s:g} s windows "
                f"vs the {what}; MSE")


def structure_control(structure: str | Sequence[str], cfg: MelConfig, frames: int | None = None,
                      pool_s: float = 0.25, sharpness: float = 8.0) -> StructureControl:
    """Structure control for ``"ABA"``-style strings (one, or one per example) on ``frames``
    (default ``cfg.frames``) frames."""
    s = (structure,) if isinstance(structure, str) else tuple(structure)
    return StructureControl(cfg, frames or cfg.frames, s, pool_s, sharpness)


def structure_from_reference(reference_mel: torch.Tensor, cfg: MelConfig, pool_s: float = 0.25,
                             sharpness: float = 8.0, frames: int | None = None) -> StructureControl:
    """Structure control whose target is the self-similarity of a reference clip's own repeats.

    ``reference_mel`` is a normalised mel ``[n_mels, frames]`` or ``[B, n_mels, frames]`` (one
    reference, or one per example); the target is :func:`self_similarity` of it ``[1 or B, S, S]``
    (detached), with the windows ``S`` chosen from the clip length and ``pool_s`` as for a
    structure string (:func:`_segments`). ``frames``, when given, must equal the reference's. A
    silent reference (every bin at the -1 floor) is refused: its self-similarity is all ones and
    carries no structure.
    """
    shape = f"[{cfg.n_mels}, frames] or [B, {cfg.n_mels}, frames]"
    if not isinstance(reference_mel, torch.Tensor):
        raise ValueError(f"reference_mel must be a normalised mel tensor {shape}, "
                         f"got {type(reference_mel).__name__}")
    ref = reference_mel.detach().float().cpu()
    ref = ref[None] if ref.ndim == 2 else ref
    if ref.ndim != 3 or len(ref) == 0 or ref.shape[1] != cfg.n_mels:
        raise ValueError(f"reference_mel must be {shape} with B >= 1, got shape {tuple(reference_mel.shape)}")
    bad = [i for i in range(len(ref)) if not torch.isfinite(ref[i]).all()]
    if bad:
        raise ValueError(f"reference_mel example(s) {bad} contain NaN or infinite values")
    n = ref.shape[-1]
    if frames is not None and frames != n:
        raise ValueError(f"frames={frames} but reference_mel has {n} frames (shape "
                         f"{tuple(reference_mel.shape)}); the reference must cover the whole generated clip")
    silent = [i for i in range(len(ref)) if float(ref[i].max()) <= SILENT]
    if silent:
        raise ValueError(f"reference_mel example(s) {silent} are silent (every bin at the -1 floor, "
                         f"{cfg.db_min:g} dB): the self-similarity of silence is all ones and carries no "
                         "structure to follow")
    if pool_s <= 0 or sharpness <= 0:
        raise ValueError(f"pool_s and sharpness must be positive, got {pool_s}, {sharpness}")
    ssm = self_similarity(ref, cfg, _reference_segments(n, cfg, pool_s), sharpness)
    return StructureControl(cfg, n, (), pool_s, sharpness, reference_ssm=ssm)
