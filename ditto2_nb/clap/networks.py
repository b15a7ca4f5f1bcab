"""MiniCLAP's networks: two audio towers (a 1-D conv over time with attention and segment pooling;
the evaluator's 2-D conv over the mel image with statistics pooling), two text sides (a projection
of frozen MiniLM embeddings; the evaluator's own words-and-trigrams encoder), and :class:`MiniClap`,
the scorer that joins them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio.analysis import reanalyse_mel
from ..audio.mel import as_waveform, wave_to_mel
from ..core.config import MelConfig, check_fields
from .base import _check_mel, _ScorerBase, check_texts
from .minilm import MINILM_DIM, minilm_embed
from .paraphrase import INSTRUMENT_CLASSES, attribute_prompts, judge_class_prompts, scorer_classes


@dataclass(frozen=True)
class ClapConfig:
    """MiniCLAP architecture. ``arch`` "conv1d" is the default scorer, "conv2d" the evaluator's."""

    arch: str = "conv1d"  # "conv1d": mel bins as channels, conv over time | "conv2d": mel as image
    text: str = "minilm"  # "minilm": frozen all-MiniLM-L6-v2 + projection | "words": own vocabulary,
    #                       word and character-trigram embeddings trained from scratch (the evaluator)
    word_dim: int = 64  # "words": width of the token embeddings
    n_mels: int = 64  # mel bins
    width: int = 128  # conv1d channels; conv2d: channels of the last stage
    depth: int = 4  # conv1d residual blocks (time halves after the first half) | conv2d stages
    segments: int = 4  # time segments pooled in order (crescendo vs decrescendo needs order)
    embed_dim: int = 128  # joint embedding width (dim)
    text_dim: int = MINILM_DIM  # frozen sentence embedding width
    text_hidden: int = 256  # hidden width of the text projection (0 = one linear layer)
    dropout: float = 0.1
    logit_scale_init: float = 1 / 0.07  # exp(learnable log scale) = 1 / temperature at start
    logit_scale_max: float = 100.0
    instruments: str = "procedural"  # the instrument classes its captions name, by the data it
    #                                  trained on (scorer_classes): "procedural" | "repertoire" | "mixed"

    def __post_init__(self) -> None:
        check_fields(self)  # n_mels, dropout: the limits table
        if self.instruments not in INSTRUMENT_CLASSES:
            raise ValueError(f"instruments must be one of {list(INSTRUMENT_CLASSES)}, "
                             f"got {self.instruments!r}")
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
    """Mel bins as channels, convolution over time, attention + segment pooling:
    ``[B, n_mels, frames] -> [B, features]``."""

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
        h = F.gelu(self.norm(self.blocks(self.stem(mel))))  # [B, W, frames/2]
        weights = torch.softmax(self.attn(h), dim=-1)  # [B, 1, frames/2]
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
    out; statistics pooling (mean and std over time) plus segment means:
    ``[B, n_mels, frames] -> [B, features]``."""

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
        h = F.gelu(self.norm(self.stages(self.stem(mel[:, None]))))  # [B, C, n_mels', frames']
        h = h.mean(2)  # [B, C, frames']: frequency averaged out
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
    of a fixed vocabulary; unknown tokens are skipped), then a projection. ``ids [B, L] -> [B, dim]``."""

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

    ``forward(mel, text_384)`` returns ``(audio [B, dim], text [B, dim], logit_scale)`` for training;
    the scorer methods (:class:`Scorer`) are what users call. ``mel_cfg`` is the mel front-end the
    model was trained on (any number of frames >= 16 works).
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
        """Unchecked ``[B, n_mels, frames] -> [B, dim]`` unit-norm (used in training)."""
        return F.normalize(self.audio_proj(self.audio(mel)), dim=-1)

    @property
    def text_encoder_name(self) -> str:
        if self.cfg.text == "words":
            return (f"own {len(self.words.vocab)}-token vocabulary (words + character trigrams), "
                    "embeddings trained from scratch")
        return "all-MiniLM-L6-v2 (frozen) + trained projection"

    def project_text(self, text_input: torch.Tensor) -> torch.Tensor:
        """Text input -> joint space ``[B, dim]`` unit-norm: frozen MiniLM embeddings ``[B, 384]``
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
        :func:`judge_class_prompts`), for the classes it learned (:func:`scorer_classes`)."""
        prompts = judge_class_prompts if self.cfg.text == "words" else attribute_prompts
        return prompts(attribute, scorer_classes(attribute, self.cfg.instruments))

    def forward(self, mel: torch.Tensor, text_input: torch.Tensor):
        return self.encode_audio(mel), self.project_text(text_input), self.logit_scale()

    # --- the scorer protocol
    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, n_mels, frames]`` -> unit-norm audio embedding ``[B, dim]``
        (differentiable)."""
        mel = _check_mel(mel, self.cfg.n_mels, self.cfg.min_frames, self.name)
        self._follow(mel)
        return self.encode_audio(mel)

    def embed_wave(self, wave: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, L]`` at ``mel_cfg.sample_rate`` -> ``[B, dim]`` through the torch mel front-end."""
        return self.embed_audio(wave_to_mel(wave, self.mel_cfg))

    def embed_text(self, texts: Sequence[str] | str) -> torch.Tensor:
        """Texts -> unit-norm text embeddings ``[B, dim]`` (see :meth:`project_text`)."""
        return self.project_text(self.text_input(check_texts(texts)))

    def measure(self, wave: torch.Tensor | np.ndarray, texts: Sequence[str] | str) -> torch.Tensor:
        """Score of audio ``[B, L]`` with the mel re-analysed by librosa (independent of the torch
        front-end the losses use; see :func:`ditto2_nb.audio.reanalyse_mel`)."""
        mel = reanalyse_mel(as_waveform(torch.as_tensor(wave)), self.mel_cfg)
        with torch.no_grad():
            return self.score(mel, texts).cpu()
