"""Quality metrics: Frechet distance with a named embedder, and an attribute classifier.

Every Frechet distance is reported together with the embedder that produced the features, because
the number means nothing without it. ``normalised_fd`` puts a model between two references measured
the same way: real data vs real data (0, the floor) and a trivial baseline (1, the ceiling).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn


def mel_stats_embedding(mels: torch.Tensor) -> torch.Tensor:
    """The "mel-stats" embedder: per-bin mean and std over time. ``[B, n_mels, frames] -> [B, 2 n_mels]``."""
    return torch.cat([mels.mean(-1), mels.std(-1)], dim=1)


EMBEDDERS = {"mel-stats": mel_stats_embedding}


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``[N, dim]``.

    FD = |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)).
    """
    a, b = feats_a.double().cpu().numpy(), feats_b.double().cpu().numpy()
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Frechet distance needs at least 2 examples per set")
    mu_a, mu_b = a.mean(0), b.mean(0)
    c_a, c_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(c_a @ c_b)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(c_a + c_b - 2 * covmean))


def trivial_baseline(mels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """The ceiling: the data's average spectrum (per bin and frame) plus Gaussian noise of the
    data's per-bin std. ``[N, n_mels, frames] -> [n, n_mels, frames]``."""
    gen = torch.Generator().manual_seed(seed)
    mean = mels.mean(0, keepdim=True)
    std = mels.std(dim=(0, 2), keepdim=True)
    return (mean + std * torch.randn((n,) + mels.shape[1:], generator=gen)).clamp(-1, 1)


@dataclass
class FDReport:
    """A model's FD next to the floor and ceiling, all with the same embedder."""

    embedder: str
    model: float
    floor: float  # data half A vs half B
    ceiling: float  # trivial baseline vs held-out

    @property
    def normalised(self) -> float:
        return (self.model - self.floor) / (self.ceiling - self.floor)

    def as_dict(self) -> dict:
        return {"embedder": self.embedder, "fd_model": self.model, "fd_floor": self.floor,
                "fd_ceiling": self.ceiling, "fd_norm": self.normalised}


def fd_report(samples: torch.Tensor, heldout: torch.Tensor, reference: torch.Tensor,
              embedder="mel-stats") -> FDReport:
    """FD of ``samples`` to ``heldout``; floor = ``reference`` (another real set of the same size)
    vs ``heldout``; ceiling = trivial baseline (from ``reference``) vs ``heldout``."""
    n = len(samples)
    h = embed(embedder, heldout)
    return FDReport(
        embedder if isinstance(embedder, str) else embedder.name,
        frechet_distance(embed(embedder, samples), h),
        frechet_distance(embed(embedder, reference[:n]), h),
        frechet_distance(embed(embedder, trivial_baseline(reference, n)), h),
    )


# ----------------------------------------------------------------------------- attribute classifier


class AttributeClassifier(nn.Module):
    """A small conv net that predicts every tag field of a mel ``[B, n_mels, frames]``."""

    def __init__(self, n_mels: int, vocab: tuple[int, ...], width: int = 96):
        super().__init__()
        self.vocab = tuple(vocab)
        self.body = nn.Sequential(
            nn.Conv1d(n_mels, width, 5, padding=2), nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(),
        )
        self.heads = nn.ModuleList(nn.Linear(2 * width, n) for n in self.vocab)

    def forward(self, mels: torch.Tensor) -> list[torch.Tensor]:
        h = self.body(mels)
        pooled = torch.cat([h.mean(-1), h.amax(-1)], dim=1)
        return [head(pooled) for head in self.heads]


@torch.enable_grad()

def one_thread(fn):
    """Run ``fn`` on one torch thread: an evaluator trained on the fly is then bit-identical
    whatever the thread count (multi-threaded reductions change the training's rounding)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return run

@one_thread
def train_attribute_classifier(mels: torch.Tensor, tags: torch.Tensor, vocab: tuple[int, ...], *,
                               steps: int = 400, batch: int = 64, seed: int = 0,
                               lr: float = 2e-3) -> AttributeClassifier:
    """Fit the classifier on real data (tags ``[N, n_tags]``, values in 1..vocab-1); trains even when
    called under ``torch.no_grad``, on one thread (the same classifier on any machine)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    clf = AttributeClassifier(mels.shape[1], vocab)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    with torch.enable_grad():  # the caller may be under torch.no_grad (an evaluation)
        for _ in range(steps):
            idx = torch.randint(len(mels), (batch,), generator=gen)
            logits = clf(mels[idx])
            loss = sum(F.cross_entropy(lg, tags[idx, k]) for k, lg in enumerate(logits))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf.eval()


class ClassifierEmbedder(nn.Module):
    """The "attr-clf" Frechet embedder: the bottleneck of an attribute classifier trained on real
    clips (the way FAD uses VGGish), ``[B, n_mels, frames] -> [B, dim]``.

    Trained on instrument, tempo, mode and drums only, with random gain, so the features describe
    timbre, rhythm and harmony and are nearly blind to loudness: no control here optimises them
    (intensity moves the level, which the "mel-stats" embedder would count as a quality change).
    """

    name = "attr-clf"

    def __init__(self, n_mels: int, vocab: tuple[int, ...], width: int = 64, dim: int = 32):
        super().__init__()
        self.body = AttributeClassifier(n_mels, (), width).body
        self.bottleneck = nn.Sequential(nn.Linear(2 * width, dim), nn.LayerNorm(dim))
        self.heads = nn.ModuleList(nn.Linear(dim, n) for n in vocab)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        h = self.body(mels)
        return self.bottleneck(torch.cat([h.mean(-1), h.amax(-1)], dim=1))

    def logits(self, mels: torch.Tensor) -> list[torch.Tensor]:
        e = F.gelu(self.forward(mels))
        return [head(e) for head in self.heads]


@torch.enable_grad()
@one_thread
def train_fd_embedder(mels: torch.Tensor, tags: torch.Tensor, vocab: tuple[int, ...], *,
                      steps: int = 600, batch: int = 64, gain_db: float = 6.0, db_range: float = 80.0,
                      seed: int = 0, lr: float = 2e-3) -> ClassifierEmbedder:
    """Fit :class:`ClassifierEmbedder` on real clips ``[N, n_mels, frames]`` with their tag columns
    ``[N, n_tags]`` (values 1..vocab-1). Each example gets a random gain of up to +-``gain_db`` dB
    (``db_range``: the dB span of the normalised mel's [-1, 1]). Trained on one thread, so the
    embedder (and every FD measured with it) is the same whatever the machine's thread count."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    emb = ClassifierEmbedder(mels.shape[1], vocab)
    opt = torch.optim.Adam(emb.parameters(), lr=lr)
    per_db = 2.0 / db_range
    for _ in range(steps):
        idx = torch.randint(len(mels), (batch,), generator=gen)
        gain = (torch.rand(batch, 1, 1, generator=gen) * 2 - 1) * gain_db * per_db
        logits = emb.logits((mels[idx] + gain).clamp(-1, 1))
        loss = sum(F.cross_entropy(lg, tags[idx, k]) for k, lg in enumerate(logits))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return emb.eval().requires_grad_(False)


@torch.no_grad()
def embed(embedder, mels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Features ``[N, dim]`` of ``mels`` ``[N, n_mels, frames]`` in batches (a name in :data:`EMBEDDERS` or a
    module such as :class:`ClassifierEmbedder`)."""
    fn = EMBEDDERS[embedder] if isinstance(embedder, str) else embedder
    return torch.cat([fn(mels[i: i + batch_size]).float().cpu() for i in range(0, len(mels), batch_size)])


@torch.no_grad()
def attribute_accuracy(clf: AttributeClassifier, mels: torch.Tensor,
                       tags: torch.Tensor) -> list[float]:
    """Per-field accuracy of ``clf`` on ``mels`` against ``tags`` ``[N, n_tags]``."""
    logits = clf(mels)
    return [float((lg.argmax(-1) == tags[:, k]).float().mean()) for k, lg in enumerate(logits)]


# ----------------------------------------------------------------------------- timing and memory


def saved_for_backward_mb(fn) -> tuple[float, object]:
    """Run ``fn()`` and measure what autograd keeps for the backward pass (MB, each storage once).

    Deterministic and device-independent, unlike process memory: the activation memory that
    gradient checkpointing saves. Returns ``(megabytes, fn's result)``.
    """
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()) / 2**20, out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; Linux ru_maxrss is in kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_call(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
