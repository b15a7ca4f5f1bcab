"""Datasets of mels with labels and captions (:class:`MelDataset`), the procedural datasets, and
the three disjoint seed ranges a preset's clips come from: training, held-out and evaluators' own.

Shapes: waveforms ``[N, L]`` float32 at ``MelConfig.sample_rate``; mels ``[N, n_mels, frames]`` float32,
normalised log-mel from :func:`ditto2_nb.audio.wave_to_mel`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.mel import wave_to_mel
from ..core import validate as check
from ..core.config import DataConfig, MelConfig, to_dict
from .cache import (
    DATA_VERSION,
    _hash,
    _labels_from_arrays,
    _labels_to_arrays,
    _load_cache,
    _save_cache,
    cache_root,
)
from .captions import caption, random_caption
from .labels import _FRAME_FIELDS, ClipLabels
from .summaries import _summary_from_json, _summary_to_json
from .synthesis import generate_clips
from .tags import tags_tensor

HELDOUT_SEED_OFFSET = 10_000_000  # held-out clips use seeds seed + OFFSET + k (never train seeds)
EVALUATOR_SEED_OFFSET = 20_000_000  # clips only evaluators train on (never train or held-out seeds)


def waves_to_mels(waves: np.ndarray | torch.Tensor, cfg: MelConfig,
                  batch_size: int = 64) -> torch.Tensor:
    """Waveforms ``[N, L]`` -> normalised log-mels ``[N, n_mels, L // hop]`` float32 (CPU, no grad)."""
    w = torch.as_tensor(waves)
    out = []
    with torch.inference_mode():
        for i in range(0, len(w), batch_size):
            out.append(wave_to_mel(w[i: i + batch_size], cfg).float().cpu())
    if not out:
        return torch.zeros(0, cfg.n_mels, w.shape[-1] // cfg.hop_length if w.ndim == 2 else 0)
    return torch.cat(out).clone()  # clone: leave inference mode (usable in autograd later)


class MelDataset(torch.utils.data.Dataset):
    """Mels ``[N, n_mels, frames]`` with their labels and captions.

    ``dataset[i]`` is ``{"mel": [n_mels, frames], "caption": str, "index": i}`` (the default collate turns a
    batch into ``mel [B, n_mels, frames]``, a list of captions and an index tensor). ``frame_labels(name)``
    gives per-frame targets ``[N, frames]`` for control training.
    """

    def __init__(self, mels: torch.Tensor, labels: Sequence[ClipLabels], cfg: MelConfig,
                 name: str = "", summary: Any = None, cache_path: Path | None = None,
                 from_cache: bool = False):
        if mels.ndim != 3 or len(mels) != len(labels):
            raise ValueError(f"mels {tuple(mels.shape)} must be [N, M, T] with one label per clip "
                             f"({len(labels)} labels)")
        self.mels, self.labels, self.cfg, self.name = mels, list(labels), cfg, name
        self.summary, self.cache_path, self.from_cache = summary, cache_path, from_cache
        self._captions: list[str] | None = None
        self._tags: torch.Tensor | None = None  # set when joined from datasets with their own tags

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"mel": self.mels[i], "caption": self.captions[i], "index": i}

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.mels.shape))
        return f"MelDataset({self.name!r}, mels {shape}{', cached' if self.from_cache else ''})"

    @property
    def captions(self) -> list[str]:
        """Template-0 captions, one per clip."""
        if self._captions is None:
            self._captions = [caption(x) for x in self.labels]
        return self._captions

    def random_captions(self, rng: np.random.Generator) -> list[str]:
        """One caption per clip, each with a template drawn from ``rng``."""
        return [random_caption(x, rng) for x in self.labels]

    def tags(self) -> torch.Tensor:
        """Conditioning tags ``[N, n_tags]`` (:func:`~ditto2_nb.data.tags.tags_tensor`)."""
        return tags_tensor(self.labels) if self._tags is None else self._tags

    def frame_labels(self, name: str) -> torch.Tensor:
        """Per-frame label ``name`` (``pitch``, ``pitch_class``, ``intensity_db``, ``section``) as
        float32 ``[N, frames]``."""
        if name not in _FRAME_FIELDS:
            raise ValueError(f"unknown per-frame label {name!r}; choose one of {_FRAME_FIELDS}")
        rows = [getattr(x, name) for x in self.labels]
        if any(r is None for r in rows):
            raise ValueError(f"label {name!r} is not known for every clip of {self.name!r}")
        return torch.from_numpy(np.stack(rows).astype(np.float32))

    def subset(self, indices: Sequence[int]) -> MelDataset:
        idx = list(indices)
        return MelDataset(self.mels[idx], [self.labels[i] for i in idx], self.cfg,
                          f"{self.name}[subset]")

    def __add__(self, other: MelDataset) -> MelDataset:
        """Both datasets' clips, each keeping its own captions and tags (a rendered clip's
        caption comes from its piece, a procedural one's from its labels)."""
        if self.cfg != other.cfg:
            raise ValueError("cannot join datasets built with different MelConfigs")
        joined = MelDataset(torch.cat([self.mels, other.mels]), self.labels + other.labels,
                            self.cfg, f"{self.name}+{other.name}")
        joined._captions = self.captions + other.captions
        joined._tags = torch.cat([self.tags(), other.tags()])
        return joined


def _cached_dataset(kind: str, key: dict[str, Any], cfg: MelConfig,
                    build: Callable[[], tuple[torch.Tensor, list[ClipLabels], Any]],
                    cache_dir: str | os.PathLike | None, use_cache: bool) -> MelDataset:
    """Load ``kind`` from the mel cache or build it (and store it)."""
    path = cache_root(cache_dir) / f"{kind}-{_hash(key)}.npz"

    def decode(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> MelDataset:
        mels = torch.from_numpy(arrays.pop("mels"))
        if list(mels.shape) != manifest["shape"] or mels.shape[1] != cfg.n_mels:
            raise ValueError(f"mels have shape {tuple(mels.shape)}, manifest {manifest['shape']}")
        return MelDataset(mels, _labels_from_arrays(arrays), cfg, kind,
                          _summary_from_json(manifest["summary"]), path, from_cache=True)

    hit = _load_cache(path, key, decode) if use_cache else None
    if hit is not None:
        return hit
    mels, labels, summary = build()
    manifest = {"key": key, "kind": kind, "n": len(labels), "shape": list(mels.shape),
                "summary": _summary_to_json(summary)}
    if use_cache:
        _save_cache(path, {"mels": mels.numpy(), **_labels_to_arrays(labels)}, manifest)
    return MelDataset(mels, labels, cfg, kind, summary, path if use_cache else None)


def procedural_dataset(cfg: MelConfig, n: int, seed: int = 0,
                       cache_dir: str | os.PathLike | None = None, *, use_cache: bool = True,
                       chunk: int = 64) -> MelDataset:
    """Procedural clips ``seed .. seed + n - 1`` as mels ``[n, n_mels, cfg.frames]`` (cached).

    Waves are generated and converted ``chunk`` clips at a time, so memory stays small. A dataset
    of zero clips is refused (nothing could train on it or be measured against it).
    """
    n = check.limited("n_clips", n, label="procedural_dataset n")
    seed = check.integer("procedural_dataset seed", seed, 0, meaning="the first clip's number; numpy "
                         "seeds are >= 0")
    key = {"source": "procedural", "mel": to_dict(cfg), "n": n, "seed": seed,
           "version": DATA_VERSION}

    def build() -> tuple[torch.Tensor, list[ClipLabels], None]:
        mels, labels = [], []
        for start in range(0, n, chunk):
            waves, labs = generate_clips(min(chunk, n - start), seed + start, cfg)
            mels.append(waves_to_mels(waves, cfg))
            labels += labs
        empty = torch.zeros(0, cfg.n_mels, cfg.frames)
        return (torch.cat(mels) if mels else empty), labels, None

    return _cached_dataset("procedural", key, cfg, build, cache_dir, use_cache)


def procedural_splits(mel: MelConfig, data: DataConfig,
                      cache_dir: str | os.PathLike | None = None) -> tuple[MelDataset, MelDataset]:
    """(train, held-out) procedural datasets from disjoint seed ranges.

    Train uses seeds ``[data.seed, data.seed + n_train)``, held-out
    ``[data.seed + HELDOUT_SEED_OFFSET, ... + n_heldout)``.
    """
    if data.n_train > HELDOUT_SEED_OFFSET:
        raise ValueError(f"n_train must be at most {HELDOUT_SEED_OFFSET} to keep seeds disjoint")
    train = procedural_dataset(mel, data.n_train, data.seed, cache_dir)
    held = procedural_dataset(mel, data.n_heldout, data.seed + HELDOUT_SEED_OFFSET, cache_dir)
    return train, held

