"""Frozen configuration dataclasses and the three presets.

Every knob of the project lives in one of these dataclasses. A preset bundles one of each:

* ``ci``     -- seconds per model on 2 CPU cores; used by the tests and CI notebook runs.
* ``laptop`` -- the default; trains each shipped model in minutes on 2 CPU cores.
* ``gpu``    -- larger, paper-like sizes for a machine with a CUDA device.

Configs round-trip through plain dicts (``to_dict`` / ``from_dict``) so that checkpoints can carry
them in safetensors metadata and papermill can pass overrides as literals.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import torch


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
        if self.f_max > self.sample_rate / 2:
            raise ValueError(f"f_max={self.f_max} exceeds Nyquist ({self.sample_rate / 2} Hz)")
        if self.db_max <= self.db_min:
            raise ValueError("db_max must be greater than db_min")
        if min(self.n_fft, self.hop_length, self.n_mels, self.frames) <= 0:
            raise ValueError("n_fft, hop_length, n_mels and frames must be positive")


@dataclass(frozen=True)
class DataConfig:
    """Which clips to make, and how many."""

    n_train: int = 2000  # procedural training clips
    n_heldout: int = 256  # procedural held-out clips (evaluation only)
    n_chorales: int = 0  # rendered Bach chorale clips added to training (0 = none)
    seed: int = 0  # base seed; clip k uses seed + k


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
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "tag_vocab", tuple(self.tag_vocab))
        for name in ("sigma_data", "sigma_min", "sigma_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"NetConfig.{name}={v!r} must be a finite positive number")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"NetConfig.sigma_max={self.sigma_max} must exceed sigma_min={self.sigma_min}")
        if not self.channels or min(self.channels) <= 0 or self.n_mels <= 0 or self.blocks < 0:
            raise ValueError(f"NetConfig: channels {self.channels}, n_mels {self.n_mels} and blocks "
                             f"{self.blocks} must be positive")

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
    p_uncond: float = 0.15  # classifier-free-guidance dropout of the tags


@dataclass(frozen=True)
class DistillConfig:
    """Knobs of the efficient, modified distillation (defaults justified in notebooks 04/05)."""

    n_grid: int = 40  # N, points of the Karras discretisation
    w: float = 2.0  # CFG scale distilled into the student (conditional teachers)
    distance: str = "pseudo_huber"
    k_max: int = 4  # K, CTM: at most K teacher Heun steps per target (original CTM: ~N)
    dsm_weight: float = 1.0  # CTM: weight of the denoising term on g(x, t, t)
    dsm_target: str = "teacher"  # CTM: denoising term towards the guided teacher (w) | "data" (w = 1)
    target_ema: float = 0.95  # EMA of the student used as the target network (mu)


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
        DataConfig(n_train=96, n_heldout=32),
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
    "gpu": Preset(
        "gpu",
        MelConfig(frames=256),
        DataConfig(n_train=8000, n_heldout=512, n_chorales=300),
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
    """Dataclass -> nested plain dict (JSON-safe)."""
    return dataclasses.asdict(cfg)


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
