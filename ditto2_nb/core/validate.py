"""Checks at the public entry points: each failure names the parameter, its value and what is allowed.

Numbers: :func:`integer`, :func:`real` (finite, optionally bounded). Tensors: :func:`noise`
(``[B, n_mels, frames]`` against a network's config; float64/float16 cast to float32, other dtypes refused)
and :func:`tags` (integer classes ``[B, n_tags]`` within the vocabulary; a single row is broadcast to
the batch).

Named parameters: :data:`LIMITS` is the one table of what each parameter allows (type, range,
meaning). The configs (:mod:`ditto2_nb.core.config`), the panels' checks and sliders, the notebook
parameters (:func:`ditto2_nb.notebook.pipeline.setup`), the CLI's arguments, the audio and dataset
functions check through :func:`limited`, so a value is accepted or refused alike at every entry
point (``OptimConfig``, ``ditto``/``ditto2``, ``student_decode`` and ``generate`` included), with one
message: ``DECODE_STEPS=0 is out of range; allowed: >= 1 (student steps of DITTO-2's final decode ...)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch


class BadType(TypeError, ValueError):
    """A value of the wrong type (a float for an integer, a string for a number...). Both a
    ``TypeError`` and a ``ValueError``: callers that report bad values (``except ValueError``:
    the panels, the notebook parameters, the CLI) catch it too."""


def integer(name: str, value, lo: int | None = None, hi: int | None = None, meaning: str = "") -> int:
    """``value`` as an int in [lo, hi] (None = unbounded); bools and non-integers (2.0 included)
    are refused. ``meaning`` is appended to the out-of-range message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadType(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name}={value} is out of range; allowed: {_interval(lo, hi, False, False)}"
                         + (f" ({meaning})" if meaning else ""))
    return value


def real(name: str, value, lo: float | None = None, hi: float | None = None, *,
         lo_open: bool = False, hi_open: bool = False, meaning: str = "") -> float:
    """``value`` as a finite float in the interval (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadType(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= lo is not None and (value <= lo if lo_open else value < lo)
    bad |= hi is not None and (value >= hi if hi_open else value > hi)
    if bad:
        raise ValueError(f"{name}={value} is out of range; allowed: {_interval(lo, hi, lo_open, hi_open)}"
                         + (f" ({meaning})" if meaning else ""))
    return value


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    if lo is None and hi is None:
        return "any finite number"
    if hi is None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {_num(hi)}"
    return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"


def _num(x) -> str:
    return str(x) if isinstance(x, numbers.Integral) else f"{x:g}"


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


def explain_tags(name: str, t: torch.Tensor, vocab: tuple[int, ...]) -> str:
    """Why tag indices ``t`` fall outside ``vocab``. The data layer, which knows the classes'
    names, replaces this with a message naming the field, the class and what the model knows
    (:func:`ditto2_nb.data.tags.vocab_error`); this layer cannot import it."""
    return f"{name} has class indices outside the vocabulary sizes {vocab} (0 = no tag)"


def tags(name: str, t, batch: int, net_cfg=None) -> torch.Tensor | None:
    """Integer tag classes ``[batch, n_tags]`` (None = unconditional) within ``net_cfg.tag_vocab``.

    A single row (``[K]`` or ``[1, K]``) is broadcast to every example here, once, so every consumer
    (classifier-free guidance's ``[tags, null]`` doubling included) sees one row per example.
    """
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
            raise ValueError(explain_tags(name, t, vocab))
    return t.long().expand(batch, -1).contiguous()


def finite_output(name: str, x: torch.Tensor, what: str) -> torch.Tensor:
    """Refuse a non-finite generated tensor, saying what produced it."""
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"{name} is NaN/inf: {what}")
    return x


# ----------------------------------------------------------------------------- the limits table


@dataclass(frozen=True)
class Limit:
    """What a named parameter allows: ``kind`` (int or float), a range (None = unbounded; open or
    closed at each end) and what the parameter means (shown in every message)."""

    kind: type
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    meaning: str = ""

    def check(self, name: str, value, hi: float | None = None):
        """``value`` checked (``hi``: a tighter upper bound known only at the call, e.g.
        ``refine_last <= iterations``); the message names ``name``."""
        top = self.hi if hi is None else (hi if self.hi is None else min(hi, self.hi))
        if self.kind is int:
            return integer(name, value, self.lo, top, self.meaning)
        return real(name, value, self.lo, top, lo_open=self.lo_open,
                    hi_open=self.hi_open and hi is None, meaning=self.meaning)

    def allowed(self) -> str:
        """e.g. ``an integer >= 1``, ``a number in (0, 1]``."""
        what = "an integer" if self.kind is int else "a finite number"
        if self.lo is None and self.hi is None:
            return what
        rng = _interval(self.lo, self.hi, self.lo_open, self.hi_open)
        return f"{what} {'in ' if rng[0] in '[(' else ''}{rng}"


MAX_SEED = 2**32 - 1  # numpy's global seeding (np.random.seed, the notebooks' setup) takes no more

# One line per parameter; every entry point checks through `limited`. Where a parameter of a config
# dataclass has the same name it is checked by this line too (`ditto2_nb.core.config`).
LIMITS: dict[str, Limit] = {
    # DITTO / DITTO-2 (OptimConfig, ditto, ditto2, the panels, the notebooks)
    "iterations": Limit(int, 0, meaning="Adam steps on the initial noise; 0 = the method's decode of "
                                        "the unoptimised noise, the baseline"),
    "lr": Limit(float, 0.0, lo_open=True, meaning="Adam learning rate"),
    "decode_steps": Limit(int, 1, meaning="student steps of DITTO-2's final decode; 0 steps would "
                                          "return the noise itself"),
    "refine_last": Limit(int, 0, meaning="final iterations through the full decode, at most iterations"),
    "steps": Limit(int, 1, meaning="sampler, teacher or training steps"),
    "w": Limit(float, 0.0, meaning="classifier-free guidance scale (1 = plain conditional)"),
    "snapshot_every": Limit(int, 0, meaning="iterations between stored snapshots; 0 = none"),
    "patience": Limit(int, 0, meaning="iterations without improvement before stopping; 0 = never stop"),
    "min_improvement": Limit(float, 0.0, meaning="smallest loss decrease that counts as one"),
    "reg_weight": Limit(float, 0.0, meaning="weight of the typical-set penalty on the noise"),
    "trust_radius": Limit(float, 0.0, meaning="largest RMS distance of the noise from its start, "
                                             "|z - z0| <= radius sqrt(D); 0 = none"),
    "seed": Limit(int, 0, MAX_SEED, meaning="random seed"),
    # audio and mels (MelConfig, load_audio, resample)
    "sample_rate": Limit(int, 1, meaning="samples per second (Hz)"),
    "n_fft": Limit(int, 1, meaning="STFT window (samples)"),
    "hop_length": Limit(int, 1, meaning="samples between frames"),
    "n_mels": Limit(int, 1, meaning="mel bins"),
    "frames": Limit(int, 1, meaning="frames per clip"),
    "f_min": Limit(float, 0.0, meaning="lowest mel edge (Hz)"),
    "f_max": Limit(float, 0.0, lo_open=True, meaning="highest mel edge (Hz), at most sample_rate / 2"),
    "db_min": Limit(float, meaning="dB mapped to -1"),
    "db_max": Limit(float, meaning="dB mapped to +1, above db_min"),
    # data (DataConfig, the procedural datasets)
    "n_clips": Limit(int, 1, meaning="clips in a dataset; an empty one cannot train or be measured"),
    "n_train": Limit(int, 1, meaning="procedural training clips"),
    "n_heldout": Limit(int, 1, meaning="procedural held-out clips"),
    "n_chorales": Limit(int, 0, meaning="rendered Bach chorale clips; 0 = none"),
    # the rendered repertoire (DataConfig, ditto2_nb.data.repertoire, the CLI's render)
    "n_repertoire": Limit(int, 0, meaning="rendered repertoire training clips; 0 = as many as n_train"),
    "n_repertoire_heldout": Limit(int, 0, meaning="rendered repertoire held-out clips; 0 = as many as "
                                                  "n_heldout"),
    "n_repertoire_evaluator": Limit(int, 0, meaning="rendered repertoire clips of the evaluators' own "
                                                    "pieces; 0 = as many as the training clips"),
    "renditions_per_piece": Limit(int, 1, meaning="renditions (instrument, tempo, key...) drawn per piece"),
    "clips_per_rendition": Limit(int, 1, meaning="consecutive clips cut from one rendition"),
    "workers": Limit(int, 1, meaning="processes parsing and rendering pieces"),
    # networks (NetConfig; stored in every model file)
    "channels": Limit(int, 4, meaning="width of each resolution level (GroupNorm needs >= 4)"),
    "blocks": Limit(int, 0, meaning="residual blocks per level"),
    "emb_dim": Limit(int, 1, meaning="noise/tag embedding width"),
    "attn_heads": Limit(int, 0, meaning="attention heads, dividing the last level's width; 0 = none"),
    "dropout": Limit(float, 0.0, 1.0, hi_open=True, meaning="dropout probability"),
    "tag_vocab": Limit(int, 1, meaning="classes of a tag field (index 0 = no tag)"),
    "sigma_data": Limit(float, 0.0, lo_open=True, meaning="the data's standard deviation"),
    "sigma_min": Limit(float, 0.0, lo_open=True, meaning="smallest noise level"),
    "sigma_max": Limit(float, 0.0, lo_open=True, meaning="largest noise level, above sigma_min"),
    # training (TrainConfig, the CLI)
    "batch_size": Limit(int, 1, meaning="examples per optimizer step"),
    "warmup": Limit(int, 0, meaning="linear learning-rate warm-up steps"),
    "ema_decay": Limit(float, 0.0, 1.0, hi_open=True, meaning="EMA decay of the weights"),
    "grad_clip": Limit(float, 0.0, lo_open=True, meaning="largest global gradient norm"),
    "ckpt_every": Limit(int, 1, meaning="steps between checkpoints"),
    "p_uncond": Limit(float, 0.0, 1.0, meaning="probability of dropping every tag of a row (CFG training)"),
    "p_partial": Limit(float, 0.0, 1.0, meaning="probability of dropping some of the tags of a row"),
    "snapshots": Limit(int, 0, meaning="EMA snapshots kept for the consistency plots; 0 = none"),
    # distillation (DistillConfig, compress)
    "n_grid": Limit(int, 2, meaning="points of the Karras discretisation"),
    "k_max": Limit(int, 1, meaning="at most this many teacher Heun steps per CTM target"),
    "dsm_weight": Limit(float, 0.0, meaning="weight of CTM's denoising term"),
    "target_ema": Limit(float, 0.0, 1.0, meaning="EMA of the student used as the target network"),
    "jacobian_weight": Limit(float, 0.0, meaning="weight of the slope match; 0 = outputs only"),
    "jacobian_step": Limit(float, 0.0, lo_open=True, meaning="RMS of the step in z for the slopes"),
}


def limited(name: str, value, *, label: str | None = None, hi: float | None = None):
    """``value`` checked against ``LIMITS[name]`` (int or float); errors are named ``label``
    (default ``name``: e.g. ``DECODE_STEPS`` in a notebook, ``--steps`` in the CLI, ``NetConfig.emb_dim``
    in a config) and say the value, what is allowed and what the parameter means."""
    return LIMITS[name].check(label or name, value, hi)
