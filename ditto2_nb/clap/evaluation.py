"""Evaluating scorers: text-to-audio retrieval, zero-shot attribute accuracy, the held-out numbers
of a model card, and :class:`AttributeJudge`, text adherence without any text model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.config import Preset, get_preset
from ..data.captions import caption
from ..data.labels import ClipLabels
from ..data.sources import evaluator_data, heldout_data
from ..data.tags import TAG_FIELDS, tag_values
from .base import check_texts
from .networks import MiniClap
from .paraphrase import ATTRIBUTES, attribute_prompts, judge_caption, match_matrix


@torch.no_grad()
def embed_mels(scorer: Any, mels: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Audio embeddings ``[N, dim]`` of many mels ``[N, n_mels, frames]``, in batches, without gradients
    (CPU).

    Also a named embedder for the Frechet distance ("MiniCLAP-eval" features of real vs generated).
    """
    chunks = [mels[i: i + batch_size] for i in range(0, len(mels), batch_size)]
    return torch.cat([scorer.embed_audio(m).cpu() for m in chunks])


@torch.no_grad()
def retrieval_metrics(scorer: Any, mels: torch.Tensor, texts: Sequence[str],
                      values: torch.Tensor | None = None, masks: np.ndarray | torch.Tensor | None = None,
                      audio_emb: torch.Tensor | None = None) -> dict[str, float]:
    """Text-to-audio retrieval: text ``i`` should rank clip ``i`` first among all ``N`` clips.

    Returns recall@1, recall@5, the median rank (1 = best) and, when label ``values`` and caption
    ``masks`` are given, ``match@1``: how often the top clip has every label value the text names
    (a fair score when several clips fit a caption equally well).
    """
    texts = check_texts(list(texts))
    if len(texts) != len(mels):
        raise ValueError(f"{len(texts)} texts for {len(mels)} clips; give one text per clip")
    a = embed_mels(scorer, mels) if audio_emb is None else audio_emb
    t = scorer.embed_text(texts).cpu()
    sim = t @ a.T  # [N text, N audio]
    own = sim.diagonal()[:, None]
    rank = 1 + (sim > own).sum(1)  # [N]
    out = {"n": len(texts), "recall@1": float((rank <= 1).float().mean()),
           "recall@5": float((rank <= 5).float().mean()), "median_rank": float(rank.float().median())}
    if values is not None and masks is not None:
        masks = torch.as_tensor(np.asarray(masks), dtype=torch.bool)
        top = sim.argmax(1)  # [N]
        match = match_matrix(values, masks)  # [audio, text]
        out["match@1"] = float(match[top, torch.arange(len(texts))].float().mean())
    return out


@torch.no_grad()
def zero_shot_accuracy(scorer: Any, mels: torch.Tensor, labels: Sequence[ClipLabels],
                       audio_emb: torch.Tensor | None = None) -> dict[str, float]:
    """Per-attribute zero-shot accuracy: the class whose prompt (:func:`attribute_prompts`) scores
    highest, against the true label, for each attribute in :data:`ATTRIBUTES`."""
    a = embed_mels(scorer, mels) if audio_emb is None else audio_emb
    truth = [tag_values(lab) for lab in labels]
    out = {}
    for attr in ATTRIBUTES:
        prompts = getattr(scorer, "class_prompts", attribute_prompts)(attr)
        classes = list(prompts)
        pred = (a @ scorer.embed_text(list(prompts.values())).cpu().T).argmax(1)
        out[attr] = float(np.mean([classes[int(k)] == tv[attr] for k, tv in zip(pred, truth)]))
    return out


def quick_metrics(scorer: MiniClap, p: Preset, n: int = 256) -> dict:
    """Held-out recall@1/5 (template-0 captions; the evaluator: its own wording) and zero-shot
    accuracy, for the model card."""
    ds = heldout_data(p)
    k = min(n, len(ds))
    mels, labels = ds.mels[:k], ds.labels[:k]
    a = embed_mels(scorer, mels)
    own = scorer.cfg.text == "words"
    r = retrieval_metrics(scorer, mels, [judge_caption(x)[0] if own else caption(x) for x in labels],
                          audio_emb=a)
    return {**r, "zero_shot": zero_shot_accuracy(scorer, mels, labels, audio_emb=a)}


@dataclass(frozen=True, eq=False)
class AttributeJudge:
    """Text adherence without any text model: an audio attribute classifier
    (:class:`ditto2_nb.core.metrics.AttributeClassifier`) trained on real clips that no scorer or
    generator saw (:func:`evaluator_data`), asked whether a clip has the labels a prompt describes."""

    clf: nn.Module
    name: str = "attribute classifier on the evaluators' own real clips"

    @torch.no_grad()
    def agreement(self, mels: torch.Tensor, labels: Sequence[ClipLabels]) -> dict[str, list[float]]:
        """Per attribute, 1.0 where the classifier's top class equals the label ``[B]`` each."""
        if len(mels) != len(labels):
            raise ValueError(f"{len(mels)} mels for {len(labels)} labels; give one label per clip")
        truth = [tag_values(lab) for lab in labels]
        out = {}
        for attr, logits in zip(TAG_FIELDS, self.clf(mels.float())):
            classes = TAG_FIELDS[attr]
            out[attr] = [float(classes[int(k) - 1] == t[attr]) for k, t in zip(logits.argmax(-1), truth)]
        return out


@lru_cache(maxsize=4)
def attribute_judge(preset: str = "laptop", steps: int = 600) -> AttributeJudge:
    """The :class:`AttributeJudge` of ``preset``, trained on the fly (deterministic; under a minute
    on the laptop preset)."""
    from ..core.metrics import train_attribute_classifier
    from ..data.tags import tag_vocab

    ds = evaluator_data(get_preset(preset))
    clf = train_attribute_classifier(ds.mels, ds.tags(), tag_vocab(), steps=steps, seed=3)
    return AttributeJudge(clf.requires_grad_(False))
