"""Checks at the public entry points: each failure names the parameter, its value and what is allowed.

Numbers: :func:`integer`, :func:`real` (finite, optionally bounded). Tensors: :func:`noise`
(``[B, n_mels, frames]`` against a network's config; float64/float16 cast to float32, other dtypes refused)
and :func:`tags` (integer classes ``[B or 1, n_tags]`` within the vocabulary, batch matching the noise).
"""

from __future__ import annotations

import math
import numbers

import torch


def integer(name: str, value, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (None = unbounded); bools and non-integers are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range; allowed: {_interval(lo, hi, False, False)}")
    return value


def real(name: str, value, lo: float | None = None, hi: float | None = None, *,
         lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float in the interval (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= lo is not None and (value <= lo if lo_open else value < lo)
    bad |= hi is not None and (value >= hi if hi_open else value > hi)
    if bad:
        raise ValueError(f"{name}={value} is out of range; allowed: {_interval(lo, hi, lo_open, hi_open)}")
    return value


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is None and hi is None:
        return "any finite number"
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def noise(name: str, z, net_cfg=None) -> torch.Tensor:
    """A unit-scale noise ``[B, n_mels, frames]`` for a network with ``net_cfg`` (its ``n_mels`` and
    ``time_divisor``): finite, floating (float64/float16/bfloat16 cast to float32)."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, n_mels, frames], got {type(z).__name__}")
    if z.ndim != 3:
        raise ValueError(f"{name} must be [B, n_mels, frames] (batch, mel bins, frames), "
                         f"got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32), got {z.dtype}")
    if z.dtype != torch.float32:
        z = z.float()
    if net_cfg is not None:
        if z.shape[1] != net_cfg.n_mels:
            raise ValueError(f"{name} has {z.shape[1]} mel bins (shape {tuple(z.shape)}); the model "
                             f"was built for n_mels={net_cfg.n_mels}")
        if z.shape[2] % net_cfg.time_divisor:
            raise ValueError(f"{name} has frames={z.shape[2]}; the model needs a multiple of "
                             f"{net_cfg.time_divisor} (it halves time {len(net_cfg.channels) - 1} times)")
    if z.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {tuple(z.shape)})")
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return z


def tags(name: str, t, batch: int, net_cfg=None) -> torch.Tensor | None:
    """Integer tag classes ``[batch or 1, n_tags]`` (None = unconditional) within ``net_cfg.tag_vocab``."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class indices [B, K] or None, got "
                        f"{type(t).__name__} (make it with ditto2_nb.encode_tags / tags_tensor)")
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold integer class indices (int64), got {t.dtype}")
    t = t[None] if t.ndim == 1 else t
    if t.ndim != 2:
        raise ValueError(f"{name} must be [B, K], got shape {tuple(t.shape)}")
    if t.shape[0] not in (1, batch):
        raise ValueError(f"{name} has batch {t.shape[0]} but the noise has batch {batch}; give one "
                         f"row per example (or a single row for all)")
    if net_cfg is not None:
        vocab = tuple(net_cfg.tag_vocab)
        if not vocab:
            raise ValueError(f"{name} given, but this model is unconditional (it has no tag input): "
                             "pass None")
        if t.shape[1] != len(vocab):
            raise ValueError(f"{name} has {t.shape[1]} fields; the model expects {len(vocab)} "
                             f"(vocab {vocab})")
        hi = torch.tensor(vocab, device=t.device)
        if ((t < 0) | (t >= hi)).any():
            raise ValueError(f"{name} has class indices outside the vocabulary sizes {vocab} (0 = no tag)")
    return t.long()


def finite_output(name: str, x: torch.Tensor, what: str) -> torch.Tensor:
    """Refuse a non-finite generated tensor, saying what produced it."""
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"{name} is NaN/inf: {what}")
    return x
