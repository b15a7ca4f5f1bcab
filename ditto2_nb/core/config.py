"""Frozen configuration dataclasses and the three presets.

Every knob of the project lives in one of these dataclasses. A preset bundles one of each:

* ``ci``     -- seconds per model on 2 CPU cores; used by the tests and CI notebook runs.
* ``laptop`` -- the default; trains each shipped model in minutes on 2 CPU cores.
* ``gpu``    -- larger, paper-like sizes for a machine with a CUDA device.

Configs round-trip through plain dicts (``to_dict`` / ``from_dict``) so that checkpoints can carry
them in safetensors metadata and papermill can pass overrides as literals.

Every field that has a line in the limits table (:data:`ditto2_nb.core.validate.LIMITS`) is checked
against it when a config is made -- in code, by ``dataclasses.replace``, or by ``from_dict`` from a
model file's metadata -- and a bad value raises an error naming ``Class.field``, the value and what
is allowed (the loaders turn it into a ``CheckpointError`` that also names the file).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import torch

from . import validate as check


def check_fields(cfg: Any) -> None:
    """Check every field of ``cfg`` that has a line in the limits table (a tuple field element by
    element); numpy scalars become Python numbers so the config stays JSON-safe."""
    cls = type(cfg).__name__
    for f in fields(cfg):
        if f.name not in check.LIMITS:
            continue
        v = getattr(cfg, f.name)
        if isinstance(v, tuple):
            v = tuple(check.limited(f.name, x, label=f"{cls}.{f.name}[{i}]") for i, x in enumerate(v))
        else:
            ok = check.limited(f.name, v, label=f"{cls}.{f.name}")
            v = v if type(v) in (int, float) else ok
        object.__setattr__(cfg, f.name, v)


@dataclass(frozen=True)
class MelConfig:
    """Mel-spectrogram front-end. Shapes: a clip is ``[n_mels, frames]`` (see docs/notation.md)."""

    sample_rate: int = 16_000  # Hz
    n_fft: int = 1024  # STFT window and FFT size (samples)
    hop_length: int = 256  # samples between frames (16 ms at 16 kHz)
    n_mels: int = 64  # mel bins (n_mels)
    f_min: float = 0.0  # lowest mel edge (Hz)
    f_max: float = 8000.0  # highest mel edge (Hz), at most sample_rate / 2
    frames: int = 128  # frames per clip (128 x 16 ms = 2.05 s)
    db_min: float = -80.0  # dB mapped to -1 (everything quieter is clamped there)
    db_max: float = 0.0  # dB mapped to +1 (0 dB = a full-scale sine in one bin)

    @property
    def n_samples(self) -> int:
        """Waveform length of one clip: ``frames * hop_length`` samples."""
        return self.frames * self.hop_length

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sample_rate

    def __post_init__(self) -> None:
        check_fields(self)
        if self.f_max > self.sample_rate / 2:
            raise ValueError(f"MelConfig.f_max={self.f_max} exceeds Nyquist ({self.sample_rate / 2} Hz "
                             f"at sample_rate={self.sample_rate})")
        if self.f_min >= self.f_max:
            raise ValueError(f"MelConfig.f_min={self.f_min} must be below f_max={self.f_max}")
        if self.db_max <= self.db_min:
            raise ValueError(f"MelConfig.db_max={self.db_max} must be greater than db_min={self.db_min}")


DATA_SOURCES = ("procedural", "repertoire", "mixed")


@dataclass(frozen=True)
class DataConfig:
    """Which clips to make, and how many."""

    n_train: int = 2000  # procedural training clips
    n_heldout: int = 256  # procedural held-out clips (evaluation only)
    n_chorales: int = 0  # rendered Bach chorale clips added to training (0 = none)
    # The rendered repertoire (ditto2_nb.data.repertoire: music21's tunes and chorales performed
    # with FluidSynth, split by piece). Clips per split; 0 = the procedural size (n_train, n_heldout,
    # and n_train for the evaluators' own pieces). Nothing trains on it unless a recipe asks for it.
    # Left out of to_dict while 0, so checkpoints written before these fields existed still resume.
    n_repertoire: int = field(default=0, metadata={"omit_if_default": True})
    n_repertoire_heldout: int = field(default=0, metadata={"omit_if_default": True})
    n_repertoire_evaluator: int = field(default=0, metadata={"omit_if_default": True})
    # What the models train and are judged on: "procedural" (the synth generator), "repertoire"
    # (the rendered pieces; held-out and evaluator clips from pieces of their own) or "mixed"
    # (training on both; held-out and evaluator clips from the repertoire).
    source: str = field(default="procedural", metadata={"omit_if_default": True})
    seed: int = 0  # base seed; clip k uses seed + k

    def __post_init__(self) -> None:  # a dataset of zero clips is refused here, naming the field
        check_fields(self)
        if self.source not in DATA_SOURCES:
            raise ValueError(f"DataConfig.source={self.source!r}; choose one of {DATA_SOURCES}")


@dataclass(frozen=True)
class NetConfig:
    """UNet size and conditioning. ``tag_vocab`` empty means an unconditional-only model."""

    n_mels: int = 64  # input/output channels (one per mel bin)
    channels: tuple = (128, 192, 256)  # width per resolution level (time halves per level)
    blocks: int = 2  # residual blocks per level
    emb_dim: int = 256  # noise/tag embedding width
    attn_heads: int = 4  # self-attention heads at the coarsest level (0 = no attention)
    dropout: float = 0.0
    tag_vocab: tuple = ()  # number of classes per tag field; index 0 of each is "no tag"
    two_time: bool = False  # second time embedding for CTM's target time s
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0

    def __post_init__(self) -> None:  # JSON gives lists; keep tuples so the config is hashable
        for name in ("channels", "tag_vocab"):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)):
                raise check.BadType(f"NetConfig.{name} must be a tuple of integers, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        if not self.channels:
            raise ValueError("NetConfig.channels is empty; give one width per resolution level")
        check_fields(self)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"NetConfig.sigma_max={self.sigma_max} must exceed sigma_min={self.sigma_min}")
        if self.attn_heads and self.channels[-1] % self.attn_heads:
            raise ValueError(f"NetConfig.attn_heads={self.attn_heads} must divide the last level's width "
                             f"channels[-1]={self.channels[-1]}")
        if not isinstance(self.two_time, bool):
            raise check.BadType(f"NetConfig.two_time must be True or False, got {self.two_time!r}")

    @property
    def conditional(self) -> bool:
        return len(self.tag_vocab) > 0

    @property
    def time_divisor(self) -> int:
        """A clip's ``frames`` must be a multiple of this (each level halves time)."""
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # optimizer steps
    batch_size: int = 32  # per process
    lr: float = 4e-4  # Adam learning rate after warm-up
    warmup: int = 100  # linear warm-up steps
    ema_decay: float = 0.998  # EMA of weights used for sampling
    grad_clip: float = 1.0  # max global gradient norm
    ckpt_every: int = 250  # steps between checkpoints
    seed: int = 0
    p_uncond: float = 0.15  # classifier-free-guidance dropout: every tag of a row zeroed
    p_partial: float = 0.35  # of the other rows: each tag kept with probability 1/2 (any subset is trained)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class DistillConfig:
    """Knobs of the efficient, modified distillation (defaults justified in notebooks 04/05)."""

    n_grid: int = 40  # N, points of the Karras discretisation
    w: float = 2.0  # CFG scale distilled into the student (conditional teachers)
    distance: str = "pseudo_huber"
    k_max: int = 4  # K, CTM: at most K teacher Heun steps per target (original CTM: ~N)
    dsm_weight: float = 1.0  # CTM: weight of the denoising term on g(x, t, t) (see dsm_balance)
    dsm_balance: str = "adaptive"  # "adaptive": DSM's gradient norm at the last layer = dsm_weight x
    # the CTM term's (the CTM authors' balance) | "fixed": the loss is ctm + dsm_weight * dsm
    dsm_target: str = "teacher"  # CTM: denoising term towards the guided teacher (w) | "data" (w = 1)
    target_ema: float = 0.95  # EMA of the student used as the target network (mu)

    def __post_init__(self) -> None:
        check_fields(self)
        for name, allowed in (("distance", ("pseudo_huber", "l2")), ("dsm_target", ("teacher", "data")),
                              ("dsm_balance", ("adaptive", "fixed"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"DistillConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")


@dataclass(frozen=True)
class Preset:
    """A named bundle of configs."""

    name: str
    mel: MelConfig = field(default_factory=MelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)  # teacher network
    train: TrainConfig = field(default_factory=TrainConfig)  # teacher training
    distill: DistillConfig = field(default_factory=DistillConfig)  # CM / CTM recipe
    distill_train: TrainConfig = field(default_factory=TrainConfig)  # CM / CTM optimisation


PRESETS: dict[str, Preset] = {
    "ci": Preset(
        "ci",
        MelConfig(frames=64),
        DataConfig(n_train=96, n_heldout=32, source="repertoire"),  # 96 / 32 / 96 rendered clips
        NetConfig(channels=(32, 48, 64), blocks=1, emb_dim=64, attn_heads=2),
        TrainConfig(steps=200, batch_size=16, lr=2e-3, warmup=10, ckpt_every=100, ema_decay=0.95),
        DistillConfig(n_grid=18, k_max=2),
        TrainConfig(steps=20, batch_size=8, lr=1e-4, warmup=2, ckpt_every=10, ema_decay=0.9),
    ),
    "laptop": Preset(
        "laptop",
        MelConfig(frames=128),
        DataConfig(n_train=2000, n_heldout=256),
        NetConfig(channels=(96, 160, 256), blocks=2),
        TrainConfig(steps=6000, batch_size=32),
        DistillConfig(n_grid=40, k_max=2),
        TrainConfig(steps=2000, batch_size=24, lr=1e-4, warmup=50, ckpt_every=200,
                    ema_decay=0.995),
    ),
    # The laptop preset's next configuration, trained on real music: 4.1-s clips (256 frames) of
    # 128 mels (benchmarks/mel_resolution.py: bins 0.6-1.2 semitones wide between middle C and 1 kHz,
    # the melody read correctly on 0.78 of the score's sounding frames against 0.69 with 64 mels, at
    # the same UNet time) from the rendered repertoire. Its models are being trained; when they
    # ship, this becomes "laptop".
    "laptop4s": Preset(
        "laptop4s",
        MelConfig(frames=256, n_mels=128),
        DataConfig(n_train=2000, n_heldout=256, n_repertoire=4000, n_repertoire_heldout=256,
                   n_repertoire_evaluator=2000, source="repertoire"),
        NetConfig(channels=(96, 160, 256), blocks=2),
        TrainConfig(steps=6000, batch_size=32),
        DistillConfig(n_grid=40, k_max=2),
        TrainConfig(steps=2000, batch_size=24, lr=1e-4, warmup=50, ckpt_every=200,
                    ema_decay=0.995),
    ),
    # The paper's models in miniature: 6.1-s clips (528 frames of 11.6 ms) at 22.05 kHz, 128 mels
    # up to 11 kHz, trained on the rendered repertoire (16,000 clips from ~5,300 pieces).
    "gpu": Preset(
        "gpu",
        MelConfig(sample_rate=22_050, f_max=11_025.0, n_mels=128, frames=528),
        DataConfig(n_train=8000, n_heldout=512, n_repertoire=16_000, n_repertoire_heldout=512,
                   n_repertoire_evaluator=4000, source="repertoire"),
        NetConfig(channels=(192, 320, 512), blocks=3, emb_dim=512, attn_heads=8),
        TrainConfig(steps=30000, batch_size=64, lr=2e-4),
        DistillConfig(n_grid=40, k_max=4),
        TrainConfig(steps=20000, batch_size=64, lr=4e-5, ema_decay=0.999),
    ),
}


def get_preset(name: str) -> Preset:
    """Return a preset by name, with a clear error for unknown names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> nested plain dict (JSON-safe). Fields marked ``omit_if_default`` (added after
    models were trained) are left out while at their default, so the metadata of older checkpoints
    still matches; ``from_dict`` restores them."""
    d = dataclasses.asdict(cfg)
    _omit_defaults(cfg, d)
    return d


def _omit_defaults(cfg: Any, d: dict[str, Any]) -> None:
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if f.metadata.get("omit_if_default") and v == f.default:
            d.pop(f.name, None)
        elif is_dataclass(v) and isinstance(d.get(f.name), dict):
            _omit_defaults(v, d[f.name])


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Nested plain dict -> dataclass ``cls``; unknown keys are an error, missing keys default."""
    hints = typing.get_type_hints(cls)
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    kwargs = {}
    for k, v in d.items():
        sub = hints[k]
        kwargs[k] = from_dict(sub, v) if is_dataclass(sub) and isinstance(v, dict) else v
    return cls(**kwargs)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
