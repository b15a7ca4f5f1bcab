"""The text control: 1 - cosine between a scorer's audio embedding of the generated mel and the
prompt's text embedding, so DITTO / DITTO-2 can optimise text adherence (the paper's text control);
scored on decoded audio by an independent evaluator.

See docs/method.md, section 7."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..audio.mel import as_waveform
from ..controls.base import Control
from ..core.config import MelConfig
from .base import _broadcast, check_texts


@dataclass(frozen=True, eq=False)
class ClapControl(Control):
    """Text control: ``f`` = the scorer's audio embedding ``[B, dim]``, ``y`` = the prompt's text
    embedding ``[1 or B, dim]``, loss ``1 - cosine`` per example ``[B]``.

    ``evaluate(wave)`` scores decoded audio ``[B, L]``: ``clap_score`` with the independent
    ``evaluator`` (re-analysed audio) and ``self_score``, the loss scorer's own view of the same
    audio (the gap between them shows how much the optimiser fitted its own judge).

    ``augment`` > 0: the loss is the mean over that many random views of the mel per call (a gain
    of +-3 dB, additive noise, a crop to 80-100 % of the frames: the augmentations the scorer was
    trained with, :func:`~ditto2_nb.clap.training.augment_mel`), drawn from a generator seeded with
    ``augment_seed``. An optimiser then has to please the scorer on every view, not exploit one
    exact input: *expectation over transformation*, a remedy for reward hacking.
    """

    scorer: Any
    prompts: tuple[str, ...]
    evaluator: Any = None
    augment: int = 0
    augment_seed: int = 0
    name: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(check_texts(list(self.prompts))))
        if isinstance(self.augment, bool) or not isinstance(self.augment, int) or self.augment < 0:
            raise ValueError(f"augment={self.augment!r} must be a whole number of views >= 0 (0 = none)")
        object.__setattr__(self, "_views", torch.Generator().manual_seed(int(self.augment_seed)))
        with torch.no_grad():
            text = self.scorer.embed_text(list(self.prompts)).detach()
        object.__setattr__(self, "_text", text)

    @property
    def text_embedding(self) -> torch.Tensor:
        return self._text  # type: ignore[attr-defined]

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return self.scorer.embed_audio(self.check(mel))

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        from .training import ClapRecipe, augment_mel  # the scorer's own training augmentations

        mel = self.check(mel)
        views = [augment_mel(mel, self._views, ClapRecipe(), self.cfg)  # type: ignore[attr-defined]
                 for _ in range(self.augment)] or [mel]
        per_view = []
        for x in views:
            a = self.scorer.embed_audio(x)
            per_view.append(1.0 - (a * _broadcast(self.text_embedding.to(a), len(a))).sum(-1))
        return torch.stack(per_view).mean(0)

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        w = as_waveform(torch.as_tensor(wave)).detach().cpu()
        if w.shape[-1] // self.cfg.hop_length != self.frames:
            raise ValueError(f"audio of {w.shape[-1]} samples gives {w.shape[-1] // self.cfg.hop_length} "
                             f"frames, but the control expects {self.frames}")
        if len(self.prompts) not in (1, len(w)):
            raise ValueError(f"{len(self.prompts)} prompts for {len(w)} clips; give one or one per clip")
        prompts = list(self.prompts) if len(self.prompts) == len(w) else list(self.prompts) * len(w)
        out = {"self_score": [float(v) for v in self.scorer.measure(w, prompts)]}
        if self.evaluator is not None:
            out["clap_score"] = [float(v) for v in self.evaluator.measure(w, prompts)]
        return out

    def describe(self) -> str:
        shown = "; ".join(repr(p) for p in self.prompts[:2]) + (" ..." if len(self.prompts) > 2 else "")
        judge = (f"evaluated by {self.evaluator.name}" if self.evaluator is not None
                 else "no independent evaluator (self-score only)")
        return (f"text: 1 - cosine between the {self.scorer.name} audio embedding and the text embedding "
                f"of {len(self.prompts)} prompt(s) ({shown}); {judge}")


def clap_control(scorer: Any, prompts: Sequence[str] | str, cfg: MelConfig, *, evaluator: Any = None,
                 frames: int | None = None, augment: int = 0, augment_seed: int = 0) -> ClapControl:
    """Text control from a scorer and one prompt (shared) or one prompt per example.

    ``evaluator`` (a second, independently trained scorer such as ``load_miniclap(evaluator=True)``)
    is only used by ``evaluate``; it must not be the loss scorer itself. ``augment``: random views
    of the mel the loss averages over (see :class:`ClapControl`; 0 = the plain loss).
    """
    if evaluator is not None and evaluator is scorer:
        raise ValueError("the evaluator must be a different scorer from the one used as the loss")
    prompts = check_texts(prompts)
    return ClapControl(cfg, frames or cfg.frames, scorer, tuple(prompts), evaluator, augment, augment_seed)
