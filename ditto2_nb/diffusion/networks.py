"""The denoising networks: a 1-D UNet over time (mel bins as channels) and its EDM wrapper.

Shapes: mels are ``[B, n_mels, frames]``; noise levels ``sigma`` are ``[B]`` (a float broadcasts).

The raw network ``F(c_in x, c_noise, tags, c_noise_s)`` is wrapped by :class:`Denoiser`, which
applies the EDM preconditioning of :mod:`ditto2_nb.diffusion.precond`. ``c_noise_s`` is the optional second
time embedding that the CTM student needs (G(x, t, s)); its branch is zero-initialised so a model
with it starts as exactly the model without it.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.config import NetConfig
from .precond import append_dims, edm_scalings


def noise_embedding(c_noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the (log-scaled) noise level: ``[B] -> [B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=c_noise.device) / half)
    angles = 100.0 * c_noise[:, None].float() * freqs[None]  # [B, half]
    return torch.cat([angles.cos(), angles.sin()], dim=1)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, ch // 4), ch)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, FiLM by the embedding, GroupNorm-SiLU-conv, residual."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv1d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.drop = _norm(c_out), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv1d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[..., None].chunk(2, dim=1)  # [B, C, 1] each
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over time, pre-norm, residual (output projection zero-init)."""

    def __init__(self, ch: int, heads: int):
        super().__init__()
        self.norm, self.heads = _norm(ch), heads
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj = _zero(nn.Conv1d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, t).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                           v.transpose(-1, -2))  # [B, heads, time, C/heads]
        return x + self.proj(h.transpose(-1, -2).reshape(b, c, t))


class UNet1d(nn.Module):
    """F(x, c_noise, tags, c_noise_s): a UNet over time with FiLM conditioning.

    Shapes: x ``[B, n_mels, frames]`` (``frames`` a multiple of ``cfg.time_divisor``), c_noise ``[B]``, tags
    ``[B, n_tags]`` long (0 = dropped), c_noise_s ``[B]`` or None. Returns ``[B, n_mels, frames]``.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        e = cfg.emb_dim
        self.emb_t = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        if cfg.two_time:  # CTM's s-branch: starts at zero so G begins as the teacher
            self.emb_s = nn.Sequential(nn.Linear(e, e), nn.SiLU(), _zero(nn.Linear(e, e)))
        self.tag_emb = nn.ModuleList(nn.Embedding(n, e) for n in cfg.tag_vocab)
        ch = cfg.channels
        self.inp = nn.Conv1d(cfg.n_mels, ch[0], 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [], ch[0]
        for i, c_level in enumerate(ch):
            level = nn.ModuleList()
            for _ in range(cfg.blocks):
                level.append(ResBlock(c, c_level, e, cfg.dropout))
                c = c_level
                skips.append(c)
            self.down.append(level)
            last = i == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv1d(c, c, 3, 2, padding=1))
        self.mid1 = ResBlock(c, c, e, cfg.dropout)
        self.attn = Attention(c, cfg.attn_heads) if cfg.attn_heads else nn.Identity()
        self.mid2 = ResBlock(c, c, e, cfg.dropout)
        self.up = nn.ModuleList()
        for c_level in reversed(ch):
            level = nn.ModuleList()
            for _ in range(cfg.blocks):
                level.append(ResBlock(c + skips.pop(), c_level, e, cfg.dropout))
                c = c_level
            self.up.append(level)
        self.out = nn.Sequential(_norm(c), nn.SiLU(), _zero(nn.Conv1d(c, cfg.n_mels, 3, padding=1)))

    def embed(self, c_noise, tags, c_noise_s) -> torch.Tensor:
        emb = self.emb_t(noise_embedding(c_noise, self.cfg.emb_dim))
        if self.cfg.two_time:
            s = c_noise if c_noise_s is None else c_noise_s
            emb = emb + self.emb_s(noise_embedding(s, self.cfg.emb_dim))
        if self.cfg.conditional:  # no tags = every field "no tag" (index 0), as in CFG dropout
            if tags is None:
                tags = torch.zeros(c_noise.shape[0], len(self.tag_emb), dtype=torch.long,
                                   device=c_noise.device)
            self._check_tags(tags)
            emb = emb + sum(table(tags[:, k]) for k, table in enumerate(self.tag_emb))
        return emb

    def _check_tags(self, tags: torch.Tensor) -> None:
        vocab = self.cfg.tag_vocab
        if tags.ndim != 2 or tags.shape[1] != len(vocab):
            raise ValueError(f"tags must be [B, {len(vocab)}] long, got {tuple(tags.shape)}")
        bad = (tags < 0) | (tags >= torch.tensor(vocab, device=tags.device))
        if bad.any():
            from ..data.tags import vocab_error

            raise ValueError(f"tag index out of range: {vocab_error('tags', tags, vocab)}")

    def forward(self, x, c_noise, tags=None, c_noise_s=None) -> torch.Tensor:
        emb = F.silu(self.embed(c_noise, tags, c_noise_s))
        h, skips = self.inp(x), []
        for level, down in zip(self.down, self.downsample):
            for block in level:
                h = block(h, emb)
                skips.append(h)
            h = down(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for i, level in enumerate(self.up):
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            for block in level:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


def drop_tag_input(net: UNet1d) -> UNet1d:
    """A tag-free copy of a conditional ``net`` that equals it with every tag dropped: the tag
    tables are removed and their constant "no tag" rows folded into the bias of the time
    embedding's last layer, to which they were added. A warm start for unconditional models."""
    out = UNet1d(dataclasses.replace(net.cfg, tag_vocab=()))
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("tag_emb.")}
    state["emb_t.2.bias"] = state["emb_t.2.bias"] + sum(t.weight[0] for t in net.tag_emb)
    out.load_state_dict(state)
    return out.to(next(net.parameters()).device)


class Denoiser(nn.Module):
    """EDM denoiser D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) around a :class:`UNet1d`.

    ``sigma_s`` (CTM students only) is passed to the network's second time embedding.
    Reference: Karras et al. 2022, section 5 and Table 1.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg, self.net = cfg, UNet1d(cfg)
        self.sigma_data, self.sigma_min, self.sigma_max = cfg.sigma_data, cfg.sigma_min, cfg.sigma_max

    def forward(self, x, sigma, tags=None, sigma_s=None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])  # [B]
        c_skip, c_out, c_in, c_noise = edm_scalings(append_dims(sigma, x.ndim), self.sigma_data)
        c_noise_s = None
        if sigma_s is not None:
            sigma_s = torch.as_tensor(sigma_s, dtype=x.dtype, device=x.device).expand(x.shape[0])
            c_noise_s = sigma_s.clamp_min(1e-8).log() / 4.0
        f = self.net(c_in * x, c_noise.flatten(), tags, c_noise_s)
        return c_skip * x + c_out * f  # 4. x0_hat


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
