"""A trained vocoder: normalised mel -> STFT (magnitude and phase) -> inverse STFT, with the Griffin-Lim
vocoder's limiter. Vocos-like, cheap on a CPU, trained in the project on rendered audio.

One line loads a trained file (never unpickled; a bad or missing file is a ``CheckpointError`` that
says what to do)::

    vocoder = load_vocoder("vocoder_laptop.safetensors")   # or load_vocoder(preset="laptop")
    wave = vocoder(mel)                                    # [B, n_mels, T] -> [B, T * hop_length]

and one command trains (or resumes) it on the preset's rendered repertoire and procedural clips::

    python -m ditto2_nb.cli train-vocoder --preset laptop

The network (:class:`VocoderNet`, see docs/method.md, section 1.3)
    mel -> Conv1d embedding -> ``blocks`` ConvNeXt blocks over frames (depthwise conv, LayerNorm,
    pointwise MLP, layer scale) -> LayerNorm -> a linear head giving, per frame and per bin of an
    ``n_fft`` STFT at the mel's hop: a log-magnitude, a phase offset ``psi`` and a frequency
    deviation ``delta`` (in bins, ``max_deviation * tanh``). The phase is **integrated**::

        phase[t, k] = sum_{u <= t} 2 pi hop (k + delta[u, k]) / n_fft  +  psi[t, k]  -  pi k

    A network made of convolutions is time-invariant: on a steady note it outputs the same numbers
    in every frame, and a phase that does not advance from frame to frame synthesises only
    multiples of ``sample_rate / hop`` (62.5 Hz at 16 kHz, hop 256) -- a C4 comes out 80 cents
    flat. Predicting the *instantaneous frequency* (a time-invariant quantity) and integrating it
    gives every partial a phase that advances at its own frequency; ``psi`` keeps onsets and noise
    free; ``- pi k`` is the phase step between neighbouring bins of a centred Hann frame.

The losses (:func:`vocoder_loss`; no adversarial term)
    multi-resolution STFT (spectral convergence + L1 of log magnitudes at 2048/512, 1024/256,
    512/128, 256/64), L1 of the normalised mel of the output against the input mel, and two
    anti-wrapped phase-derivative losses on the predicted STFT against the true one (instantaneous
    frequency: the phase step between frames; group delay: between bins), weighted by the true
    magnitude (bins within 60 dB of the clip's peak).

Deterministic by seed, device-agnostic (``device`` arguments; the tensors follow the mel's device).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import checkpoints as ckpt
from ..core import validate as check
from ..core.assets import cache_dir, shipped_path, training_card
from ..core.config import MelConfig, TrainConfig, from_dict, get_preset, to_dict
from ..core.train import export_ema, fit, on_device, training_device, unwrap
from .mel import (
    AudioError,
    as_waveform,
    check_mel,
    db_to_norm,
    mel_power,
    norm_to_db,
    power_to_db,
    wave_to_mel,
)
from .vocoder import GriffinLimVocoder

KIND = "vocoder"
MRSTFT_RESOLUTIONS = ((2048, 512), (1024, 256), (512, 128), (256, 64))
"""(n_fft, hop) of the training loss's multi-resolution STFT (window = n_fft, Hann)."""


@dataclass(frozen=True)
class VocoderConfig:
    """The network and its training crops and loss weights (stored in every file's metadata)."""

    dim: int = 192  # width of the ConvNeXt trunk
    intermediate: int = 576  # width of each block's pointwise MLP
    blocks: int = 6  # ConvNeXt blocks (receptive field: +-(3 + 3 * blocks) frames at kernel 7)
    kernel: int = 7  # depthwise kernel over frames (odd)
    n_fft: int = 1024  # synthesis STFT size and window; hop = the mel's hop_length
    max_deviation: float = 2.5  # largest instantaneous-frequency deviation from a bin's centre (bins)
    segment_frames: int = 64  # training crop (mel frames)
    mel_weight: float = 5.0  # weight of the mel L1 (normalised mel: 1 = 40 dB)
    phase_weight: float = 1.0  # weight of each anti-wrapped phase-derivative loss (radians)
    min_gain_db: float = -12.0  # training crops are attenuated by a gain in [min_gain_db, 0] dB, half of them

    def __post_init__(self) -> None:
        for name in ("dim", "intermediate", "blocks", "kernel", "n_fft", "segment_frames"):
            check.integer(f"VocoderConfig.{name}", getattr(self, name), 1)
        if self.kernel % 2 == 0:
            raise ValueError(f"VocoderConfig.kernel={self.kernel} must be odd (centred convolution)")
        check.real("VocoderConfig.max_deviation", self.max_deviation, 0.0, lo_open=True,
                   meaning="bins either side of a bin's centre")
        for name in ("mel_weight", "phase_weight"):
            check.real(f"VocoderConfig.{name}", getattr(self, name), 0.0, meaning="loss weight")
        check.real("VocoderConfig.min_gain_db", self.min_gain_db, hi=0.0, meaning="attenuation in dB")


# name -> (network and crops, optimisation); presets are not changed: the vocoder's recipe lives here
RECIPES: dict[str, tuple[VocoderConfig, TrainConfig]] = {
    "ci": (VocoderConfig(dim=32, intermediate=64, blocks=2, segment_frames=16),
           TrainConfig(steps=200, batch_size=4, lr=2e-3, warmup=10, ema_decay=0.9, ckpt_every=100)),
    "laptop": (VocoderConfig(dim=128, intermediate=384, blocks=8, segment_frames=32),
               TrainConfig(steps=3600, batch_size=16, lr=1.5e-3, warmup=100, ema_decay=0.995,
                           ckpt_every=100)),
    "gpu": (VocoderConfig(dim=384, intermediate=1152, blocks=8, segment_frames=128),
            TrainConfig(steps=50000, batch_size=32, lr=5e-4, warmup=1000, ema_decay=0.999, ckpt_every=1000)),
}


RECIPES["laptop4s"] = RECIPES["laptop"]  # the same network and steps on 128-mel, 4-s clips


def recipe(preset: str) -> tuple[VocoderConfig, TrainConfig]:
    if preset not in RECIPES:
        raise ValueError(f"no vocoder recipe for preset {preset!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[preset]


def reproduce_vocoder_command(preset: str, steps: int | None = None) -> str:
    """The CLI command that trains (or resumes) the vocoder of ``preset``."""
    recipe(preset)
    if steps is not None:
        steps = check.limited("steps", steps)
    return f"python -m ditto2_nb.cli train-vocoder --preset {preset}" + (f" --steps {steps}" if steps else "")


# ----------------------------------------------------------------------------- the network


class ConvNeXtBlock(nn.Module):
    """Depthwise conv over frames -> LayerNorm -> Linear -> GELU -> Linear -> layer scale, residual."""

    def __init__(self, dim: int, intermediate: int, kernel: int, scale: float):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Linear(dim, intermediate), nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, dim, T]
        h = self.dw(x).transpose(1, 2)
        h = self.gamma * self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + h.transpose(1, 2)


class VocoderNet(nn.Module):
    """Normalised mel ``[B, n_mels, T]`` -> complex STFT ``[B, n_fft // 2 + 1, T + 1]`` (the last mel
    frame repeated: the trailing centred frame the mel dropped), synthesised by :meth:`wave`."""

    def __init__(self, vcfg: VocoderConfig, mel: MelConfig):
        super().__init__()
        self.vcfg, self.mel = vcfg, mel
        self.n_freq = vcfg.n_fft // 2 + 1
        self.embed = nn.Conv1d(mel.n_mels, vcfg.dim, vcfg.kernel, padding=vcfg.kernel // 2)
        self.norm_in = nn.LayerNorm(vcfg.dim)
        self.blocks = nn.ModuleList(ConvNeXtBlock(vcfg.dim, vcfg.intermediate, vcfg.kernel, 1.0 / vcfg.blocks)
                                    for _ in range(vcfg.blocks))
        self.norm_out = nn.LayerNorm(vcfg.dim)
        self.head = nn.Linear(vcfg.dim, 3 * self.n_freq)
        with torch.no_grad():  # phase offset and deviation start at 0: clean partials at the bin centres
            self.head.weight[self.n_freq:].zero_()
            self.head.bias[self.n_freq:].zero_()
        k = torch.arange(self.n_freq, dtype=torch.float64)
        self.register_buffer("window", torch.hann_window(vcfg.n_fft), persistent=False)
        self.register_buffer("bin_shift", (math.pi * k).remainder(2 * math.pi).float(), persistent=False)

    def heads(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per bin and frame ``[B, n_freq, T + 1]``: magnitude, phase offset ``psi`` and the raw
        frequency deviation (``max_deviation * tanh`` of it, in bins) of a normalised mel
        ``[B, n_mels, T]``."""
        x = torch.cat([mel, mel[..., -1:]], dim=-1)
        h = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        out = self.head(self.norm_out(h.transpose(1, 2))).transpose(1, 2)  # [B, 3 F, T + 1]
        logmag, psi, dev = out.split(self.n_freq, dim=1)
        return torch.exp(logmag.clamp(max=10.0)), psi, dev

    def stft(self, mel: torch.Tensor) -> torch.Tensor:
        """The predicted complex STFT ``[B, n_freq, T + 1]`` of a normalised mel ``[B, n_mels, T]``."""
        mag, psi, dev = self.heads(mel)
        return torch.polar(mag, self.phase(psi, dev))

    def phase(self, psi: torch.Tensor, dev: torch.Tensor) -> torch.Tensor:
        """Integrated phase: the bin centres' advance taken modulo 2 pi exactly (integers), the
        deviations' advance accumulated over frames, plus ``psi - pi k``."""
        n, hop = self.vcfg.n_fft, self.mel.hop_length
        frames = psi.shape[-1]
        t = torch.arange(1, frames + 1, device=psi.device, dtype=torch.int64)
        k = torch.arange(self.n_freq, device=psi.device, dtype=torch.int64)
        centre = ((k[:, None] * hop * t[None]) % n).to(psi.dtype) * (2 * math.pi / n)  # [F, T + 1]
        step = (2 * math.pi * hop / n) * self.vcfg.max_deviation * torch.tanh(dev)
        return centre + step.cumsum(-1) + psi - self.bin_shift[:, None]

    def wave(self, spec: torch.Tensor, frames: int) -> torch.Tensor:
        """Inverse STFT of :meth:`stft`'s output -> waveform ``[B, frames * hop_length]``."""
        return torch.istft(spec, self.vcfg.n_fft, self.mel.hop_length, window=self.window, center=True,
                           length=frames * self.mel.hop_length)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`heads` (what the training loss calls, through a data-parallel wrapper if any);
        :meth:`synthesize` gives audio."""
        return self.heads(mel)

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``[B, n_mels, T]`` -> waveform ``[B, T * hop_length]``."""
        return self.wave(self.stft(mel), mel.shape[-1])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- the vocoder


class NeuralVocoder:
    """Mel -> waveform with a trained :class:`VocoderNet`, the same interface as
    :class:`~ditto2_nb.audio.vocoder.GriffinLimVocoder`: ``vocoder(mel)`` takes a normalised mel
    ``[B, n_mels, frames]`` (or ``[n_mels, frames]``) and returns ``[B, frames * hop_length]`` audio
    through the same look-ahead limiter (``ceiling``, ``last_gain_db``). Differentiable (call it
    under ``torch.inference_mode()`` when no gradient is wanted); the output is on the mel's device.
    """

    limit = GriffinLimVocoder.limit  # the same look-ahead limiter, same attributes

    def __init__(self, net: VocoderNet, ceiling: float = 0.98, meta: dict | None = None):
        if not 0 < ceiling <= 1:
            raise ValueError(f"ceiling={ceiling} must be in (0, 1] (full scale = 1)")
        self.net, self.cfg, self.ceiling = net, net.mel, ceiling
        self.sample_rate = self.cfg.sample_rate
        self.window = 2 * (self.cfg.sample_rate // 200) + 1
        self.last_gain_db: list[float] = []
        self.meta = meta or {}

    def to(self, device: str | torch.device) -> NeuralVocoder:
        self.net.to(device)
        return self

    def synthesize(self, mel: torch.Tensor) -> torch.Tensor:
        """The network's waveform before the limiter (what the training loss sees)."""
        mel = check_mel(mel, self.cfg)
        device = next(self.net.parameters()).device
        return self.net.synthesize(mel.to(device=device, dtype=torch.float32)).to(mel.device)

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        return self.limit(self.synthesize(mel))


# ----------------------------------------------------------------------------- the losses


def _stft(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    return torch.stft(wave, n_fft, hop, window=torch.hann_window(n_fft, device=wave.device), center=True,
                      return_complex=True)


def mrstft_distance(ref: torch.Tensor, est: torch.Tensor, resolutions=MRSTFT_RESOLUTIONS,
                    reduce: bool = True) -> torch.Tensor:
    """Multi-resolution STFT distance between waveforms ``[B, L]``: the mean over ``resolutions``
    of spectral convergence ``||A - A_hat||_F / ||A||_F`` plus the mean absolute difference of
    natural-log magnitudes (floored at 1e-5). ``reduce=False``: one value per example ``[B]``."""
    total = 0.0
    for n_fft, hop in resolutions:
        a, b = _stft(ref, n_fft, hop).abs(), _stft(est, n_fft, hop).abs()
        sc = torch.linalg.norm((a - b).flatten(1), dim=1) / torch.linalg.norm(a.flatten(1), dim=1).clamp_min(
            1e-8)
        lm = (a.clamp_min(1e-5).log() - b.clamp_min(1e-5).log()).abs().flatten(1).mean(1)
        total = total + sc + lm
    out = total / len(resolutions)
    return out.mean() if reduce else out


def _anti_wrap(x: torch.Tensor) -> torch.Tensor:
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def phase_losses(phase: torch.Tensor, target: torch.Tensor, floor_db: float = -40.0,
                 need: str = "both") -> tuple[torch.Tensor, torch.Tensor]:
    """Anti-wrapped errors of the phase's derivatives, a predicted ``phase`` (radians) against a
    ``target`` STFT (complex), both ``[B, F, T]``: instantaneous frequency (the step between frames)
    and group delay (the step between bins), averaged with weights that ramp from 0 at ``floor_db``
    below the clip's peak to 1 at it (the partials, not the noise floor). ``need``: "if", "gd" or
    "both" (the other is returned as 0)."""
    mag = target.abs()
    db = 20 * torch.log10(mag.clamp_min(1e-8) / mag.amax((1, 2), keepdim=True).clamp_min(1e-8))
    w = (1 - db / floor_db).clamp(0, 1)
    q = target.angle()
    zero = phase.new_zeros(())
    iaf = gd = zero
    if need in ("if", "both"):
        w_t = torch.minimum(w[..., 1:], w[..., :-1])
        iaf = (_anti_wrap(phase.diff(dim=-1) - q.diff(dim=-1)) * w_t).sum() / w_t.sum().clamp_min(1e-8)
    if need in ("gd", "both"):
        w_f = torch.minimum(w[:, 1:], w[:, :-1])
        gd = (_anti_wrap(phase.diff(dim=1) - q.diff(dim=1)) * w_f).sum() / w_f.sum().clamp_min(1e-8)
    return iaf, gd


def vocoder_loss(net: nn.Module, mel: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The training loss of ``net`` (a :class:`VocoderNet`, maybe inside DDP) on mels ``[B, n_mels, T]``
    and their waveforms ``[B, T * hop]``: (loss, {component: value}).

    The frequency deviation is trained by the instantaneous-frequency loss alone: the waveform and
    group-delay losses see it through the phase's running sum, where a change at one frame moves every
    later frame, and their summed gradients drown the local, supervised one (measured: with them the
    instantaneous-frequency error rose above chance). Magnitude and ``psi`` get every loss."""
    module = unwrap(net)
    vcfg, cfg = module.vcfg, module.mel
    mag, psi, dev = net(mel)  # through the wrapper: data-parallel gradients are averaged
    phase = module.phase(psi, dev.detach())
    spec = torch.polar(mag, phase)
    est = module.wave(spec, mel.shape[-1])
    mr = mrstft_distance(wave, est)
    est_mel = db_to_norm(power_to_db(mel_power(est, cfg)), cfg)[..., : mel.shape[-1]]
    mel_l1 = (est_mel - mel).abs().mean()
    target = _stft(wave, vcfg.n_fft, cfg.hop_length)
    iaf, _ = phase_losses(module.phase(psi, dev), target, need="if")
    _, gd = phase_losses(phase, target, need="gd")
    loss = mr + vcfg.mel_weight * mel_l1 + vcfg.phase_weight * (iaf + gd)
    return loss, {"mrstft": mr.item(), "mel_l1": mel_l1.item(), "phase_if": iaf.item(), "phase_gd": gd.item()}


# ----------------------------------------------------------------------------- training


def _fingerprint(waves: torch.Tensor) -> str:
    return hashlib.sha256(waves.numpy().tobytes()).hexdigest()[:16]


def train_vocoder(preset: str, waves: torch.Tensor | np.ndarray, out: str | Path | None = None, *,
                  steps: int | None = None, progress: bool = True, work_dir: str | Path | None = None,
                  data_description: str | None = None,
                  recipe_override: tuple[VocoderConfig, TrainConfig] | None = None,
                  device: str | torch.device = "auto") -> Path:
    """Train (or resume) the vocoder of ``preset`` on ``waves`` ``[N, L]`` (float32 at the preset's
    sample rate, L at least one training crop) and export its EMA; returns the exported file.

    Random crops of ``segment_frames`` mel frames (and their samples) are drawn per step from the
    step's generator, so a resumed run sees the same batches as an uninterrupted one. The training
    checkpoint lives in ``work_dir`` (default ``$DITTO2_CACHE/runs``) and is resumed from when its
    configuration and data fingerprint match. ``python -m ditto2_nb.cli train-vocoder`` gathers the
    preset's data and calls this. ``device``: where to train (``"auto"``: CUDA when present); the
    waveforms and their mels are moved there once when they fit.
    """
    p = get_preset(preset)
    vcfg, tcfg = recipe_override or recipe(p.name)
    dev = training_device(device)
    if steps is not None:
        tcfg = dataclasses.replace(tcfg, steps=check.limited("steps", steps))
    cfg, hop = p.mel, p.mel.hop_length
    w = as_waveform(torch.as_tensor(waves)).contiguous()
    seg = vcfg.segment_frames
    if w.shape[-1] < seg * hop:
        raise AudioError(f"training waves have {w.shape[-1]} samples, fewer than one crop of "
                         f"{seg} frames ({seg * hop} samples)")
    w = w[:, : (w.shape[-1] // hop) * hop]
    mels = torch.cat([wave_to_mel(w[i: i + 64], cfg) for i in range(0, len(w), 64)])
    frames = mels.shape[-1]
    fingerprint, n_clips = _fingerprint(w), len(w)
    w, mels = on_device(w, dev), on_device(mels, dev)
    torch.manual_seed(tcfg.seed)
    model = VocoderNet(vcfg, cfg)

    def loss_fn(net, gen, step):
        idx = torch.randint(n_clips, (tcfg.batch_size,), generator=gen)
        start = torch.randint(frames - seg + 1, (tcfg.batch_size,), generator=gen)
        gain_db = vcfg.min_gain_db * torch.rand(tcfg.batch_size, generator=gen)
        gain_db = torch.where(torch.rand(tcfg.batch_size, generator=gen) < 0.5, gain_db, 0.0).to(dev)
        crops = list(zip(idx.tolist(), start.tolist()))
        m = torch.stack([mels[i, :, s: s + seg] for i, s in crops]).to(dev)
        x = torch.stack([w[i, s * hop: (s + seg) * hop] for i, s in crops]).to(dev)
        # an attenuation is exact on the normalised mel: a shift in dB, clamped at the floor as before
        m = db_to_norm(norm_to_db(m, cfg) + gain_db[:, None, None], cfg)
        x = x * (10.0 ** (gain_db / 20.0))[:, None]
        return vocoder_loss(net, m, x)

    description = data_description or f"{n_clips} clips of {w.shape[-1] / cfg.sample_rate:.2f} s"
    meta = {"kind": KIND, "preset": p.name, "vocoder": to_dict(vcfg), "train": to_dict(tcfg),
            "mel": to_dict(cfg), "data_fingerprint": fingerprint, "data_clips": n_clips}
    work = Path(work_dir) if work_dir else cache_dir() / "runs"
    state = work / f"{KIND}_{p.name}.train.safetensors"
    if state.is_file() and int(ckpt.read_metadata(state).get("step", 0)) > tcfg.steps:
        raise ckpt.CheckpointError(
            f"{state} has already trained {ckpt.read_metadata(state)['step']} steps, more than the "
            f"{tcfg.steps} asked for; ask for at least as many steps, or give another work folder")
    ema, hist = fit(model, loss_fn, tcfg, state, meta=meta, progress=progress, device=dev)
    out = Path(out) if out else shipped_path(KIND, p.name)
    card = training_card(meta, KIND, True, tcfg, hist, parameters=count_parameters(model),
                         data_description=description)
    card["reproduce"] = (reproduce_vocoder_command(p.name, tcfg.steps) if recipe_override is None else
                         "no CLI command: trained from Python with a custom recipe (see the metadata)")
    card["design"] = (f"ConvNeXt x{vcfg.blocks} (dim {vcfg.dim}, MLP {vcfg.intermediate}, kernel "
                      f"{vcfg.kernel}) over mel frames -> log-magnitude, phase offset and instantaneous "
                      f"frequency per bin of a {vcfg.n_fft}-point STFT at hop {hop}, phase integrated over "
                      "frames -> inverse STFT; losses: multi-resolution STFT (2048/1024/512/256), mel L1 "
                      f"x{vcfg.mel_weight:g}, anti-wrapped instantaneous-frequency and group-delay losses "
                      f"x{vcfg.phase_weight:g}; no adversarial term")
    export_ema(out, ema.model, card)
    with open(Path(out).with_suffix(".md"), "a") as f:
        f.write(f"* design: {card['design']}\n"
                "* use: `ditto2_nb.audio.load_vocoder(path)(mel)` -> waveform (same limiter as Griffin-Lim); "
                "benchmark against Griffin-Lim: `python benchmarks/vocoder.py` "
                f"(benchmarks/results/vocoder_{p.name}.json)\n")
    return out


# ----------------------------------------------------------------------------- loading


def vocoder_file(preset: str = "laptop") -> Path:
    """The preset's vocoder file: the shipped one, else the cached one; a ``CheckpointError``
    naming the training command when neither exists (a vocoder is never trained on the fly: it
    needs the rendered repertoire)."""
    recipe(preset)
    for path in (shipped_path(KIND, preset), cache_dir() / f"{KIND}_{preset}.safetensors"):
        if path.is_file():
            return path
    raise ckpt.CheckpointError(
        f"no vocoder for preset {preset!r} is shipped or cached. Train it with "
        f"`{reproduce_vocoder_command(preset)} --out {cache_dir() / f'{KIND}_{preset}.safetensors'}` "
        "(or use GriffinLimVocoder, which needs no weights)")


def load_vocoder(path: str | Path | None = None, *, preset: str = "laptop",
                 device: str | torch.device = "cpu", ceiling: float = 0.98) -> NeuralVocoder:
    """Rebuild a :class:`NeuralVocoder` from a file alone (EMA weights cast to float32; nothing is
    unpickled). ``path`` None: the preset's file (:func:`vocoder_file`)."""
    path = Path(path) if path is not None else vocoder_file(preset)
    tensors, meta = ckpt.read(path)
    if meta.get("kind") != KIND:
        raise ckpt.CheckpointError(f"{path} is a {meta.get('kind', 'file without a kind')!s} file, not a "
                                   "vocoder: train one with `python -m ditto2_nb.cli train-vocoder`")
    try:
        vcfg, mel = from_dict(VocoderConfig, meta["vocoder"]), from_dict(MelConfig, meta["mel"])
    except (KeyError, TypeError, ValueError) as e:
        raise ckpt.CheckpointError(f"{path}: its vocoder config is missing or invalid ({e})") from e
    net = VocoderNet(vcfg, mel)
    ckpt.load_state(net, tensors, path)
    net = net.to(device).eval().requires_grad_(False)
    return NeuralVocoder(net, ceiling, meta)


# ----------------------------------------------------------------------------- the preset's default

def choice_file(path: str | Path) -> Path:
    """Where a vocoder file's measured verdict against Griffin-Lim lives: ``<name>.choice.json``
    beside it (written by ``benchmarks/vocoder.py``, tied to the file's SHA-256)."""
    return Path(path).with_suffix(".choice.json")


def write_choice(path: str | Path, default: str, evidence: str, rule: str) -> Path:
    """Record which vocoder ``benchmarks/vocoder.py`` made the default for the vocoder file ``path``
    (``default``: "neural" or "griffin_lim"), with the result file it comes from and its rule."""
    if default not in ("neural", "griffin_lim"):
        raise ValueError(f"default must be 'neural' or 'griffin_lim', got {default!r}")
    side = choice_file(path)
    side.write_text(json.dumps({"default": default, "weights_sha256": ckpt.sha256(path),
                                "evidence": evidence, "rule": rule}, indent=1) + "\n")
    return side


def vocoder_choice(preset: str = "laptop") -> tuple[str, str]:
    """(``"neural"`` or ``"griffin_lim"``, why): the preset's default vocoder is its trained one
    (:func:`vocoder_file`) when the verdict beside it (:func:`choice_file`, measured on these very
    weights) names it; else Griffin-Lim."""
    try:
        path = vocoder_file(preset)
    except ckpt.CheckpointError:
        return "griffin_lim", f"no trained vocoder for preset {preset!r}"
    side = choice_file(path)
    if not side.is_file():
        return "griffin_lim", f"{path.name} was never benchmarked against Griffin-Lim (no {side.name})"
    verdict = json.loads(side.read_text())
    if verdict.get("weights_sha256") != ckpt.sha256(path):
        return "griffin_lim", f"{side.name} was measured on other weights than today's {path.name}"
    if verdict.get("default") != "neural":
        return "griffin_lim", f"{side.name}: the benchmark kept Griffin-Lim ({verdict.get('evidence')})"
    return "neural", f"{side.name}: the benchmark chose the trained vocoder ({verdict.get('evidence')})"


def preset_vocoder(preset: str = "laptop", device: str | torch.device = "cpu"):
    """The preset's default vocoder, ready to call on mels: :class:`NeuralVocoder` or
    :class:`~ditto2_nb.audio.vocoder.GriffinLimVocoder` (32 iterations) by :func:`vocoder_choice`;
    its ``choice`` attribute says which and why."""
    name, why = vocoder_choice(preset)
    if name == "neural":
        voc = load_vocoder(preset=preset, device=device)
    else:
        voc = GriffinLimVocoder(get_preset(preset).mel)
    voc.choice = f"{name}: {why}"
    return voc
