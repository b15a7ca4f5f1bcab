"""What every text-audio scorer offers (:class:`Scorer`), the errors they raise, and the checks and
plumbing they share (texts, mels, ``score`` and ``measure`` from the embeddings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..core.config import MelConfig


class ClapError(RuntimeError):
    """A scorer that cannot be built or loaded (bad checkpoint, unsupported configuration)."""


class ClapFilesMissing(ClapError, FileNotFoundError):
    """Files or packages a scorer needs are absent; the message names them and where to get them."""


# ============================================================================ the protocol


@runtime_checkable
class Scorer(Protocol):
    """What :func:`clap_control` and the benchmarks need from a text-audio scorer."""

    name: str
    mel_cfg: MelConfig

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor: ...  # [B, n_mels, frames] -> [B, dim]

    def embed_wave(self, wave: torch.Tensor) -> torch.Tensor: ...  # [B, L] -> [B, dim]

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor: ...  # B texts -> [B, dim]

    def score(self, mel: torch.Tensor, texts: Sequence[str] | str) -> torch.Tensor: ...  # [B]

    def measure(self, wave: torch.Tensor | np.ndarray, texts: Sequence[str] | str) -> torch.Tensor: ...


def check_texts(texts: Sequence[str] | str) -> list[str]:
    """A non-empty list of non-empty strings (a single string is a list of one)."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError("texts is empty: give at least one prompt")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] is a {type(t).__name__}, not a string")
        if not t.strip():
            raise ValueError(f"texts[{i}] is an empty string: describe the music, e.g. 'a fast organ "
                             "melody with drums'")
    return list(texts)


def _broadcast(text_emb: torch.Tensor, batch: int) -> torch.Tensor:
    """One text per example, or one text for the whole batch."""
    if len(text_emb) not in (1, batch):
        raise ValueError(f"got {len(text_emb)} texts for a batch of {batch}; give one text or one per "
                         "example")
    return text_emb.expand(batch, -1)


class _ScorerBase(nn.Module):
    """Shared plumbing: ``score`` and ``measure`` from the embeddings; device follows the input."""

    name: str = "scorer"
    mel_cfg: MelConfig

    def _follow(self, x: torch.Tensor) -> None:
        p = next(self.parameters(), None)
        if p is not None and p.device != x.device:
            self.to(x.device)

    def score(self, mel: torch.Tensor, texts: Sequence[str] | str) -> torch.Tensor:
        """Cosine between each mel and its text (or one text for all) ``[B]``, in [-1, 1]."""
        a = self.embed_audio(mel)
        t = _broadcast(self.embed_text(check_texts(texts)).to(a), len(a))
        return (a * t).sum(-1).clamp(-1.0, 1.0)

    def score_wave(self, wave: torch.Tensor, texts: Sequence[str] | str) -> torch.Tensor:
        a = self.embed_wave(wave)
        t = _broadcast(self.embed_text(check_texts(texts)).to(a), len(a))
        return (a * t).sum(-1).clamp(-1.0, 1.0)

    def measure(self, wave: torch.Tensor | np.ndarray, texts: Sequence[str] | str) -> torch.Tensor:
        """The score of decoded audio ``[B, L]`` as a plain measurement (no gradients)."""
        with torch.no_grad():
            return self.score_wave(torch.as_tensor(wave), texts).cpu()


def _check_mel(mel: torch.Tensor, n_mels: int, min_frames: int, who: str) -> torch.Tensor:
    if not isinstance(mel, torch.Tensor):
        raise ValueError(f"{who}: mel must be a torch.Tensor, got {type(mel).__name__}")
    if mel.ndim != 3 or mel.shape[1] != n_mels:
        hint = " (add a batch dimension: mel[None])" if mel.ndim == 2 else ""
        raise ValueError(f"{who}: mel must be [B, {n_mels}, T] (normalised log-mel), got shape "
                         f"{tuple(mel.shape)}{hint}")
    if mel.shape[0] == 0:
        raise ValueError(f"{who}: empty batch")
    if mel.shape[2] < min_frames:
        raise ValueError(f"{who}: needs at least {min_frames} frames, got {mel.shape[2]}")
    if not torch.isfinite(mel).all():
        raise ValueError(f"{who}: mel contains NaN or infinite values")
    return mel.float()
