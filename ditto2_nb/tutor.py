"""Checks for the tutorial exercises (``tutorials/``): say in plain words what is wrong.

Each ``check_*`` function takes the student's function, runs it and the library's reference on
**fresh random inputs** (a new draw on every call, so an answer hard-coded for the notebook's data
cannot pass), and either prints one line starting with ``✓`` or raises :class:`TutorError` whose
message names the problem: not written yet, returned None, wrong shape (expected vs got), wrong
sign, off by a constant factor, a missing term, no gradient, ... A tutorial calls a check in the
cell right after each exercise::

    from ditto2_nb import tutor
    tutor.check_mel_filterbank(my_mel_filterbank)

Checks draw from their own generators and build their small models inside
``torch.random.fork_rng``, so running a check never changes a notebook's random numbers.

=====================  ==========================================================================
tutorial               checks
=====================  ==========================================================================
T00 quickstart         :func:`check_swell_target`
T01 audio and mels     :func:`check_hz_to_mel`, :func:`check_mel_filterbank`, :func:`check_log_compress`
T02 diffusion          :func:`check_edm_scalings`, :func:`check_denoiser`, :func:`check_edm_loss`
T03 sampling           :func:`check_euler_step`, :func:`check_heun_step`
T04 consistency        :func:`check_consistency_scalings`, :func:`check_cd_target`, :func:`check_cd_loss`
T05 CTM                :func:`check_ctm_jump`, :func:`check_gamma_step`
T06 DITTO / DITTO-2    :func:`check_checkpointed`, :func:`check_optimise`, :func:`check_ditto2`
T07 your own control   :func:`check_brightness`, :func:`check_brightness_loss`
=====================  ==========================================================================
"""

from __future__ import annotations

import copy
import math
import random
import re
import sysconfig
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from .audio.mel import db_to_norm, mel_filterbank, norm_to_db, norm_to_power, power_to_db
from .controls.intensity import intensity_target
from .controls.melody import mel_centre_hz
from .core.config import DistillConfig, MelConfig, NetConfig
from .diffusion.losses import edm_loss
from .diffusion.networks import Denoiser
from .diffusion.precond import append_dims, consistency_scalings, ctm_jump, edm_scalings
from .diffusion.samplers import sample_euler, sample_heun
from .diffusion.schedule import karras_sigmas, sample_log_normal_sigma
from .distill.losses import cd_loss, pseudo_huber, teacher_solve
from .distill.sampling import ctm_gamma_sample, student_decode
from .distill.students import ConsistencyModel
from .optimize.loop import OptimConfig
from .optimize.methods import ditto2

__all__ = [
    "TutorError",
    "check_brightness",
    "check_brightness_loss",
    "check_cd_loss",
    "check_cd_target",
    "check_checkpointed",
    "check_consistency_scalings",
    "check_ctm_jump",
    "check_denoiser",
    "check_ditto2",
    "check_edm_loss",
    "check_edm_scalings",
    "check_euler_step",
    "check_gamma_step",
    "check_heun_step",
    "check_hz_to_mel",
    "check_log_compress",
    "check_mel_filterbank",
    "check_optimise",
    "check_swell_target",
    "spectral_centroid_hz",
]


class TutorError(AssertionError):
    """An exercise check failed; the message says what is wrong and how to fix it."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows these lines instead of a traceback (the message is the whole story)."""
        lines = str(self).splitlines() or [""]
        return [f"\x1b[1;31mTutorError\x1b[0m: {lines[0]}", *lines[1:]]


# ============================================================================ plumbing

# One stream of seeds per session: every check call draws fresh inputs, reproducibly.
_SEEDS = random.Random(20240531)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(_SEEDS.randrange(2**31))


def _passed(message: str) -> None:
    print(f"✓ {message}")


def _name(fn) -> str:
    return getattr(fn, "__name__", "your function")


_LIBRARY = Path(__file__).resolve().parent
_STDLIB = [Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")]


def _student_frame(filename: str) -> bool:
    """True for code the student wrote (a notebook cell or their own file), not library code."""
    if filename.startswith("<frozen"):
        return False
    path = Path(filename).resolve()
    return "site-packages" not in path.parts and not path.is_relative_to(_LIBRARY) and not any(
        path.is_relative_to(p) for p in _STDLIB)


def _where(err: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _student_frame(f.filename)]
    if not frames:
        return ""
    f = frames[-1]
    line = (f.line or "").strip()
    return f" (in {f.name}, line {f.lineno}: `{line}`)" if line else f" (in {f.name}, line {f.lineno})"


def _hint(err: BaseException) -> str:
    msg = str(err)
    if isinstance(err, RuntimeError) and ("size of tensor" in msg or "must match" in msg
                                          or "broadcast" in msg or "shape" in msg):
        return (" Hint: two tensors have shapes that do not fit together; print their .shape. Noise "
                "levels given per example are [B]: reshape them to broadcast against x, e.g. "
                "append_dims(sigma, x.ndim) or sigma.view(-1, 1, 1).")
    if isinstance(err, (TypeError, ValueError)) and ("Tensor" in msg or "real number" in msg
                                                     or "one element tensors" in msg):
        return " Hint: use torch functions (torch.log10, torch.exp, torch.sqrt...) on tensors, not math.*."
    if "does not require grad" in msg:
        return (" Hint: the gradient is cut somewhere: avoid .detach(), .item(), .numpy() and "
                "torch.no_grad() on the way to the output.")
    return ""


def _call(fn, *args, what: str | None = None):
    """Run the student's function; turn every way it can fail into a plain-words TutorError."""
    what = what or _name(fn)
    if not callable(fn):
        raise TutorError(f"expected a function, got {type(fn).__name__}: pass the function itself, "
                         "without calling it (no parentheses).")
    try:
        out = fn(*args)
    except NotImplementedError as e:
        detail = f" ({e})" if str(e) else ""
        raise TutorError(f"{what} is not written yet{detail}: replace the `raise NotImplementedError` "
                         "line with your code, run that cell, then run this check again.") from None
    except TutorError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the student's code is reported
        raise TutorError(f"{what} raised {type(e).__name__}: {e}{_where(e)}.{_hint(e)}") from e
    if out is None:
        raise TutorError(f"{what} returned None: did you forget the `return` statement?")
    return out


def _as_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, float, int, np.floating)):
        try:
            return torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise TutorError(f"{what} should be a torch.Tensor, got {type(x).__name__}.")


def _shape_hint(got: tuple, want: tuple) -> str:
    if len(got) == len(want) == 2 and got == want[::-1]:
        return " It looks transposed: swap the two axes (.T)."
    if len(want) == 0:
        return " Expected a single number: reduce with .mean()."
    if math.prod(got) == math.prod(want):
        return " Same number of entries in another layout: a transpose or reshape too many (or few)?"
    if len(got) == len(want) - 1:
        return (" One dimension is missing: did you sum/average over an axis that should stay, or drop "
                "the batch dimension?")
    if len(got) == len(want) + 1:
        return " One dimension too many: an axis that should be reduced (sum/mean), or an extra [..., None]?"
    return ""


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=rtol, atol=atol))


def _compare(got, want: torch.Tensor, what: str, *, rtol: float = 1e-4, atol: float = 1e-5,
             mistakes: Sequence[tuple[str, torch.Tensor]] = (), nonfinite: str = "",
             hint: str = "", shape_hint: str = "") -> None:
    """Raise a TutorError that explains how ``got`` differs from ``want`` (or return quietly).

    ``mistakes`` are (message, value) pairs: what a typical wrong answer would return. The first
    one that ``got`` matches gives the message (a missing term, a swapped weight...).
    """
    g = _as_tensor(got, what).detach().cpu()
    if g.is_complex():
        raise TutorError(f"{what} is complex-valued: a square root (** 0.5) of a negative number? "
                         f"{nonfinite or 'Check that what goes under each square root cannot be negative.'}")
    g, w = g.double(), want.detach().double().cpu()
    if tuple(g.shape) != tuple(w.shape):
        raise TutorError(f"{what} has the wrong shape: expected {list(w.shape)}, got {list(g.shape)}."
                         f"{_shape_hint(tuple(g.shape), tuple(w.shape)) or shape_hint}")
    if not torch.isfinite(g).all() and torch.isfinite(w).all():
        idx = tuple(int(i) for i in (~torch.isfinite(g)).nonzero()[0]) if g.ndim else ()
        raise TutorError(f"{what} contains NaN or inf (first at index {list(idx)}). "
                         f"{nonfinite or 'A division by zero, or the log of zero?'}")
    if _close(g, w, rtol, atol):
        return
    for message, value in mistakes:
        c = value.detach().double().cpu()
        if _close(g, c, rtol, atol) and not _close(c, w, rtol, atol):
            raise TutorError(f"{what} is not right: {message}")
    if _close(g, -w, rtol, atol):
        raise TutorError(f"{what} has the wrong sign: yours is minus the expected value.{hint}")
    # A constant factor or offset: the residual after fitting it is tiny *relative* to the values.
    den, g_norm = float((w * w).sum()), float(g.norm())
    if den > 0 and g_norm > 0:
        c = float((g * w).sum()) / den
        if abs(c - 1) > 1e-3 and float((g - c * w).norm()) <= 1e-3 * g_norm:
            raise TutorError(f"{what} is off by a constant factor: yours ≈ {c:.4g} × the expected value. "
                             f"A missing or extra constant (a 2, a 1/2, a 10, sigma_data...)?{hint}")
    if g.numel() > 1:
        offset = float((g - w).mean())
        if abs(offset) > atol and float((g - w - offset).norm()) <= 1e-3 * float((g - w).norm()):
            raise TutorError(f"{what} is off by a constant: yours = expected {offset:+.4g} everywhere.{hint}")
    diff = (g - w).abs()
    idx = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(w.shape))) if w.ndim else ()
    raise TutorError(f"{what} does not match the reference: the largest difference is "
                     f"{float(diff.max()):.3g} at index {list(idx)} (yours {float(g[idx]):.5g}, expected "
                     f"{float(w[idx]):.5g}).{hint}")


def _tuple_of(out, n: int, what: str, names: str) -> tuple:
    if not isinstance(out, (tuple, list)) or len(out) != n:
        got = f"a {type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        raise TutorError(f"{what} should return {n} values ({names}), got {got}.")
    return tuple(out)


def _randomise(model: nn.Module, scale: float = 0.05) -> nn.Module:
    """Give every parameter (also the zero-initialised output layers) a small random value."""
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(0.0, scale)
            else:
                p.add_(torch.randn_like(p) * scale)
    return model


_TINY = NetConfig(n_mels=8, channels=(8, 16), blocks=1, emb_dim=16, attn_heads=0)


def _tiny_cm_models(seed: int) -> tuple[Denoiser, ConsistencyModel, ConsistencyModel]:
    """A small random teacher, a CM student copied from it and a different target network."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        teacher = _randomise(Denoiser(_TINY)).eval().requires_grad_(False)
        student = _randomise(ConsistencyModel.from_teacher(teacher), 0.02)
        target = _randomise(copy.deepcopy(student), 0.02)
    return teacher, student, target


def _needs_grad(out, what: str, inputs: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise TutorError(f"{what} is not differentiable: no gradient can flow back to {inputs}. Avoid "
                         ".detach(), .item(), .numpy(), argmax and torch.no_grad() on the way.")
    return out


# ============================================================================ T00 quickstart


def check_swell_target(fn: Callable[[int], torch.Tensor]) -> None:
    """T00: ``fn(frames) -> [frames]`` a dB curve from -30 up to -10 at the middle and back to -30."""
    g = _gen()
    sizes = (int(torch.randint(16, 300, (1,), generator=g)), 64, 129)
    for frames in sizes:
        want = intensity_target("up_down", frames, -30.0, -10.0)
        got = _call(fn, frames)
        _compare(got, want, f"your curve for frames={frames}", rtol=1e-3, atol=0.05, mistakes=[
            ("it falls then rises: start quiet (-30 dB), be loudest (-10 dB) in the middle, end quiet.",
             intensity_target("down_up", frames, -30.0, -10.0)),
            ("it only rises: after the peak in the middle it should come back down to -30 dB.",
             intensity_target("ramp_up", frames, -30.0, -10.0)),
        ], hint=" Hint: a piecewise-linear curve through (0, -30), (0.5, -10), (1, -30): "
                "controls.from_points or np.interp.")
    _passed(f"your swell matches controls.intensity_target('up_down') for T = {', '.join(map(str, sizes))}")


# ============================================================================ T01 audio and mels


def _htk_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def check_hz_to_mel(hz_to_mel: Callable, mel_to_hz: Callable | None = None) -> None:
    """T01: the HTK mel scale ``m = 2595 log10(1 + f / 700)`` and (optionally) its inverse."""
    g = _gen()
    hz = torch.rand(40, generator=g, dtype=torch.float64) * 11_000.0
    hz[0] = 0.0
    got = _call(hz_to_mel, hz.clone())
    _compare(got, _htk_mel(hz), "hz_to_mel(f)", rtol=1e-4, atol=1e-2, mistakes=[
        ("you used the natural log: the HTK formula is 2595 · log10(1 + f / 700) "
         "(or, the same thing, 1127 · ln(1 + f / 700)).", 2595.0 * torch.log1p(hz / 700.0)),
        ("f / 700 and 700 / f are swapped: m = 2595 · log10(1 + f / 700).",
         2595.0 * torch.log10(1.0 + 700.0 / hz.clamp_min(1e-9))),
    ], nonfinite="The log of zero at f = 0 Hz? The formula is log10(1 + f / 700), which is 0 at 0 Hz.")
    checked = "hz_to_mel"
    if mel_to_hz is not None:
        m = torch.rand(40, generator=g, dtype=torch.float64) * float(_htk_mel(torch.tensor(11_000.0)))
        want = 700.0 * (10.0 ** (m / 2595.0) - 1.0)
        got = _call(mel_to_hz, m.clone())
        _compare(got, want, "mel_to_hz(m)", rtol=1e-4, atol=1e-2, mistakes=[
            ("the inverse of log10 is 10 ** x, not exp(x): f = 700 · (10 ** (m / 2595) - 1).",
             700.0 * torch.expm1(m / 2595.0)),
            ("subtract 1 after the power: f = 700 · (10 ** (m / 2595) - 1).", 700.0 * 10.0 ** (m / 2595.0)),
        ])
        back = _call(mel_to_hz, _call(hz_to_mel, hz.clone()), what="mel_to_hz(hz_to_mel(f))")
        _compare(back, hz, "mel_to_hz(hz_to_mel(f))", rtol=1e-4, atol=1e-2)
        checked += " and mel_to_hz (round trip too)"
    _passed(f"{checked} match the HTK mel scale on 40 random frequencies")


def _random_mel_cfg(g: torch.Generator) -> MelConfig:
    pick = lambda options: options[int(torch.randint(len(options), (1,), generator=g))]  # noqa: E731
    sr = pick([8000, 16_000, 22_050])
    n_fft = pick([512, 1024, 2048])
    n_mels = int(torch.randint(8, 33, (1,), generator=g))
    f_max = float(int(sr / 2 * (0.6 + 0.4 * float(torch.rand(1, generator=g)))))
    return MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels,
                     f_min=pick([0.0, 20.0, 60.0]), f_max=f_max)


def _triangles(freqs: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Triangular filters ``[F, M]`` peaking at 1 between consecutive ``edges`` (``M + 2`` of them)."""
    width = edges[1:] - edges[:-1]  # [M + 1]
    rel = edges[None, :] - freqs[:, None]  # [F, M + 2]
    rising = -rel[:, :-2] / width[:-1]
    falling = rel[:, 2:] / width[1:]
    return torch.minimum(rising, falling).clamp_min(0.0)


def check_mel_filterbank(fn: Callable[[MelConfig], torch.Tensor]) -> None:
    """T01: ``fn(cfg) -> [F, M]`` triangular HTK mel filters (peak 1), ``F = n_fft // 2 + 1``."""
    g = _gen()
    cfgs = [MelConfig(), _random_mel_cfg(g), _random_mel_cfg(g)]
    for cfg in cfgs:
        n_freqs = cfg.n_fft // 2 + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = mel_filterbank(cfg)
            slaney_scale = AF.melscale_fbanks(n_freqs, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate,
                                              norm=None, mel_scale="slaney")
            area = AF.melscale_fbanks(n_freqs, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate,
                                      norm="slaney", mel_scale="htk")
        freqs = torch.linspace(0, cfg.sample_rate // 2, n_freqs)
        linear = _triangles(freqs, torch.linspace(cfg.f_min, cfg.f_max, cfg.n_mels + 2))
        edges_mel = torch.linspace(float(_htk_mel(torch.tensor(cfg.f_min))),
                                   float(_htk_mel(torch.tensor(cfg.f_max))), cfg.n_mels + 2)
        edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
        wrong_bins = _triangles(torch.linspace(0, cfg.sample_rate, n_freqs), edges_hz)
        got = _call(fn, cfg)
        what = (f"my_mel_filterbank(cfg) for sample_rate={cfg.sample_rate}, n_fft={cfg.n_fft}, "
                f"n_mels={cfg.n_mels}, f_min={cfg.f_min:g}, f_max={cfg.f_max:g}")
        _compare(got, want, what, rtol=1e-3, atol=2e-4, mistakes=[
            ("the M + 2 edge frequencies must be evenly spaced in mel (then converted to Hz), not in Hz.",
             linear),
            ("that is the Slaney mel scale; this project uses HTK: m = 2595 · log10(1 + f / 700).",
             slaney_scale),
            ("each triangle should peak at 1 (no area normalisation).", area),
            ("the F FFT bins lie at frequencies from 0 to sample_rate / 2 (the Nyquist frequency), "
             "not up to sample_rate.", wrong_bins),
        ], hint=" Hint: F bin frequencies torch.linspace(0, sample_rate // 2, F); M + 2 edges evenly "
                "spaced in mel from f_min to f_max; filter m rises from edge m to edge m+1 and falls to m+2.",
            shape_hint=" There should be one column per mel filter: M = n_mels filters need M + 2 edge "
                       "frequencies (each filter spans three consecutive edges).")
    _passed(f"your filterbank matches audio.mel_filterbank on {len(cfgs)} configurations "
            f"(shapes {', '.join(str(list(mel_filterbank(c).shape)) for c in cfgs)})")


def check_log_compress(fn: Callable[[torch.Tensor, MelConfig], torch.Tensor]) -> None:
    """T01: ``fn(power [B, M, T], cfg) -> [B, M, T]``: 10 log10 power in dB, [db_min, db_max] -> [-1, 1]."""
    g = _gen()
    for db_min, db_max in ((-80.0, 0.0), (-100.0 + 40.0 * float(torch.rand(1, generator=g)), 10.0)):
        cfg = MelConfig(db_min=db_min, db_max=db_max)
        power = 10.0 ** (torch.rand(3, cfg.n_mels, 20, generator=g) * 15.0 - 13.0)  # -130..+20 dB
        power[0, :4, :3] = 0.0  # exact silence
        want = db_to_norm(power_to_db(power), cfg)
        safe = power.clamp_min(1e-12)
        span = db_max - db_min
        unclamped = 2.0 * (10.0 * torch.log10(safe) - db_min) / span - 1.0
        got = _call(fn, power.clone(), cfg)
        _compare(got, want, f"my_log_compress(power, cfg) with db_min={db_min:g}, db_max={db_max:g}",
                 rtol=1e-4, atol=1e-4, mistakes=[
                     ("mel power needs 10 · log10(power); 20 · log10 is for amplitudes.",
                      db_to_norm(20.0 * torch.log10(safe), cfg)),
                     ("use log10 for decibels, not the natural log.",
                      db_to_norm(10.0 * torch.log(safe), cfg)),
                     ("values go beyond [-1, 1]: clamp the result (quieter than db_min -> -1, louder "
                      "than db_max -> +1).", unclamped),
                     ("you mapped onto [0, 1]; map db_min to -1 and db_max to +1: 2 (dB - db_min) / "
                      "(db_max - db_min) - 1.", ((10.0 * torch.log10(safe) - db_min) / span).clamp(0, 1)),
                 ], nonfinite="Silence has power exactly 0 and log10(0) = -inf: clamp the power to a "
                              "tiny floor (e.g. 1e-12) before the log.")
    _passed("your log compression matches audio.db_to_norm(audio.power_to_db(power)), silence included")


# ============================================================================ T02 diffusion


def _log_normal_sigmas(g: torch.Generator, n: int) -> torch.Tensor:
    return (torch.randn(n, generator=g, dtype=torch.float64) * 1.5 - 0.5).exp()


def check_edm_scalings(fn: Callable) -> None:
    """T02: ``fn(sigma, sigma_data) -> (c_skip, c_out, c_in, c_noise)`` (EDM, Table 1)."""
    g = _gen()
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    sigma = _log_normal_sigmas(g, 12).view(-1, 1)  # [B, 1]
    out = _tuple_of(_call(fn, sigma.clone(), sd), 4, "my_edm_scalings", "c_skip, c_out, c_in, c_noise")
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    s2, d2 = sigma**2, sd**2
    what = f"(sigma_data = {sd:.3f})"
    _compare(out[0], c_skip, f"c_skip {what}", mistakes=[
        ("c_skip = sd² / (σ² + sd²): it must go to 1 as σ -> 0 (keep x when there is no noise); yours "
         "has σ² on top.", s2 / (s2 + d2))])
    _compare(out[1], c_out, f"c_out {what}", mistakes=[
        ("c_out = σ · sd / sqrt(σ² + sd²): the square root is missing.", sigma * sd / (s2 + d2)),
        ("c_out = σ · sd / sqrt(σ² + sd²): the factor sigma_data is missing.", sigma / (s2 + d2).sqrt()),
    ])
    _compare(out[2], c_in, f"c_in {what}", mistakes=[
        ("c_in is inverted: it is 1 / sqrt(σ² + sd²), which scales x to unit variance.", (s2 + d2).sqrt()),
        ("c_in = 1 / sqrt(σ² + sd²): the square root is missing.", 1.0 / (s2 + d2)),
    ])
    _compare(out[3], c_noise, f"c_noise {what}", mistakes=[
        ("c_noise = ln(σ) / 4: divide by 4.", sigma.log()),
        ("c_noise uses the natural log: ln(σ) / 4.", sigma.log10() / 4.0),
    ])
    _passed("c_skip, c_out, c_in and c_noise match precond.edm_scalings on 12 random noise levels")


class _ToyF(nn.Module):
    """A random MLP F(u [B, D], c_noise [B, 1]) -> [B, D], standing in for the network."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.a = nn.Linear(dim + 1, 32).double()
            self.b = nn.Linear(32, dim).double()

    def forward(self, u: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(torch.cat([u, c_noise.expand(len(u), 1)], dim=1))))


def _toy_batch(g: torch.Generator, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    b = int(torch.randint(5, 12, (1,), generator=g))
    b += b == dim  # keep B != D so a wrong broadcast cannot hide
    x = torch.randn(b, dim, generator=g, dtype=torch.float64) * 2.0
    return x, _log_normal_sigmas(g, b).view(-1, 1)


def check_denoiser(fn: Callable) -> None:
    """T02: ``fn(F, x [B, D], sigma [B, 1], sigma_data) -> D(x, sigma)``, the preconditioned denoiser
    ``c_skip x + c_out F(c_in x, c_noise)``."""
    g = _gen()
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    net = _ToyF(2, int(torch.randint(2**31, (1,), generator=g)))
    x, sigma = _toy_batch(g)
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    with torch.no_grad():
        want = c_skip * x + c_out * net(c_in * x, c_noise)
        mistakes = [
            ("looks like c_skip * x is missing: D = c_skip · x + c_out · F(c_in · x, c_noise).",
             c_out * net(c_in * x, c_noise)),
            ("looks like c_out is missing in front of F(...).", c_skip * x + net(c_in * x, c_noise)),
            ("F must see the scaled input c_in · x, not x itself.", c_skip * x + c_out * net(x, c_noise)),
            ("F's second input is c_noise = ln(σ) / 4, not σ.", c_skip * x + c_out * net(c_in * x, sigma)),
            ("the skip term is c_skip · x; yours multiplies the noisy x by c_out.",
             c_out * x + c_skip * net(c_in * x, c_noise)),
        ]
        got = _call(fn, net, x.clone(), sigma.clone(), sd)
    _compare(got, want, "my_denoise(F, x, sigma, sigma_data)", rtol=1e-5, atol=1e-6, mistakes=mistakes)
    _passed(f"D(x, σ) = c_skip·x + c_out·F(c_in·x, c_noise) matches on a random network (B = {len(x)})")


def check_edm_loss(fn: Callable) -> None:
    """T02: ``fn(denoise, x0 [B, D], sigma [B, 1], z [B, D], sigma_data) -> scalar`` vs
    :func:`ditto2_nb.diffusion.losses.edm_loss` on the same random draws."""
    g = _gen()
    seed = int(torch.randint(2**31, (1,), generator=g))
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    net = _ToyF(2, seed)
    x0, _ = _toy_batch(g)

    def denoise(x, sigma):  # the reference denoiser, sigma [B, 1]
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
        return c_skip * x + c_out * net(c_in * x, c_noise)

    gen = torch.Generator().manual_seed(seed)
    want = edm_loss(lambda x, s, tags: denoise(x, s.view(-1, 1)), x0, None, gen, sigma_data=sd)
    gen = torch.Generator().manual_seed(seed)  # the same draws, in the library's order
    sigma = sample_log_normal_sigma(len(x0), generator=gen).double().view(-1, 1)
    z = torch.randn(x0.shape, generator=gen).double()
    x = x0 + sigma * z
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    with torch.no_grad():
        d = denoise(x, sigma)
        mistakes = [
            ("looks like the weight λ(σ) = (σ² + sd²) / (σ · sd)² is missing.", ((d - x0) ** 2).mean()),
            ("compare D(x, σ) with the clean x0, not with the noisy x.", (weight * (d - x) ** 2).mean()),
            ("the weight is upside down: λ(σ) = (σ² + sd²) / (σ · sd)².", ((d - x0) ** 2 / weight).mean()),
            ("you summed: take the mean over all entries.", (weight * (d - x0) ** 2).sum()),
            ("add the noise: x = x0 + σ · z.", (weight * (denoise(x0 - sigma * z, sigma) - x0) ** 2).mean()),
        ]
    net.zero_grad()
    got = _call(fn, denoise, x0.clone(), sigma.clone(), z.clone(), sd)
    _compare(got, want, "my_edm_loss(denoise, x0, sigma, z, sigma_data)", rtol=1e-5, atol=1e-7,
             mistakes=mistakes)
    _needs_grad(got, "my_edm_loss", "the network's weights").backward()
    if net.a.weight.grad is None or float(net.a.weight.grad.abs().sum()) == 0:
        raise TutorError("my_edm_loss gives no gradient to the network's weights: call the denoiser "
                         "with gradients on (no torch.no_grad(), no .detach()).")
    _passed("your loss equals losses.edm_loss on the same σ and z, and it trains the network")


# ============================================================================ T03 sampling


def _toy_denoise(g: torch.Generator, shape: tuple[int, ...]) -> Callable:
    """A smooth random denoiser D(x, sigma) on tensors of ``shape`` (any sigma, float or tensor)."""
    a = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5

    def denoise(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype)
        return torch.tanh(a * x + b) / (1.0 + s) + x / (1.0 + s**2)

    return denoise


def _step_cases(g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    s = float(0.5 + 20.0 * torch.rand(1, generator=g))
    cases = [(s, s * float(0.3 + 0.6 * torch.rand(1, generator=g))), (0.8, 0.3), (0.4, 0.0)]
    return [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in cases]


def check_euler_step(fn: Callable) -> None:
    """T03: ``fn(denoise, x, sigma, sigma_next) -> x_next``, one Euler step of the PF-ODE."""
    g = _gen()
    shape = (3, 4, 6)
    denoise = _toy_denoise(g, shape)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3.0
    for sigma, sigma_next in _step_cases(g):
        want = sample_euler(denoise, x, torch.stack([sigma, sigma_next]))
        d = (x - denoise(x, sigma)) / sigma
        got = _call(fn, denoise, x.clone(), sigma, sigma_next)
        _compare(got, want, f"my_euler_step from σ={float(sigma):.3g} to σ_next={float(sigma_next):.3g}",
                 rtol=1e-6, atol=1e-8, mistakes=[
                     ("the step goes the wrong way: the slope is d = (x - D(x, σ)) / σ and the step is "
                      "x + d · (σ_next - σ) (σ_next - σ is negative).", x - d * (sigma_next - sigma)),
                     ("you returned the denoiser's estimate D(x, σ), not a step to σ_next.",
                      denoise(x, sigma)),
                     ("the slope is (x - D(x, σ)) / σ: divide by σ.",
                      x + (x - denoise(x, sigma)) * (sigma_next - sigma)),
                 ])
    _passed("your Euler step matches samplers.sample_euler on 3 steps (the last one to σ = 0)")


def check_heun_step(fn: Callable) -> None:
    """T03: ``fn(denoise, x, sigma, sigma_next) -> x_next``, one Heun step (Euler when sigma_next = 0)."""
    g = _gen()
    shape = (2, 5, 7)
    denoise = _toy_denoise(g, shape)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3.0
    for sigma, sigma_next in _step_cases(g):
        want = sample_heun(denoise, x, torch.stack([sigma, sigma_next]))
        dt = sigma_next - sigma
        d = (x - denoise(x, sigma)) / sigma
        x_e = x + d * dt
        mistakes = [("you returned the Euler predictor: Heun adds a corrector, the average of the slope at "
                     "σ and the slope d' = (x_e - D(x_e, σ_next)) / σ_next at the predictor x_e.", x_e)]
        if float(sigma_next) > 0:
            d_next = (x_e - denoise(x_e, sigma_next)) / sigma_next
            d_at_x = (x - denoise(x, sigma_next)) / sigma_next
            mistakes += [
                ("step with the average of both slopes, (d + d') / 2, not with d' alone.", x + d_next * dt),
                ("evaluate the second slope at the Euler predictor x_e, not at x.",
                 x + 0.5 * (d + d_at_x) * dt),
                ("the corrector step starts from x, not from the predictor x_e.",
                 x_e + 0.5 * (d + d_next) * dt),
                ("the step goes the wrong way: x + (d + d') / 2 · (σ_next - σ).",
                 x - 0.5 * (d + d_next) * dt),
            ]
        got = _call(fn, denoise, x.clone(), sigma, sigma_next)
        _compare(got, want, f"my_heun_step from σ={float(sigma):.3g} to σ_next={float(sigma_next):.3g}",
                 rtol=1e-6, atol=1e-8, mistakes=mistakes,
                 nonfinite="At σ_next = 0 there is no second slope (it divides by σ_next = 0): the last "
                           "step is a plain Euler step.")
    _passed("your Heun step matches samplers.sample_heun on 3 steps (the last one, to σ = 0, is Euler)")


# ============================================================================ T04 consistency distillation


def check_consistency_scalings(fn: Callable) -> None:
    """T04: ``fn(t, sigma_data, eps) -> (c_skip, c_out)`` with c_skip(eps) = 1, c_out(eps) = 0."""
    g = _gen()
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    eps = 0.05 + 0.3 * float(torch.rand(1, generator=g))  # large, so that a lost eps shows
    t = torch.cat([torch.tensor([eps], dtype=torch.float64), eps + _log_normal_sigmas(g, 10)]).view(-1, 1)
    out = _tuple_of(_call(fn, t.clone(), sd, eps), 2, "my_consistency_scalings", "c_skip, c_out")
    c_skip, c_out = consistency_scalings(t, sd, eps)
    at_eps = [float(_as_tensor(v, "c").reshape(-1)[0]) if _as_tensor(v, "c").numel() == len(t) else None
              for v in out]
    if at_eps[0] is not None and abs(at_eps[0] - 1.0) > 1e-4:
        edm = abs(at_eps[0] - sd**2 / (eps**2 + sd**2)) < 1e-4
        hint = " These are the EDM scalings: shift t by eps." if edm else ""
        raise TutorError(f"the boundary condition fails: f(x, eps) must equal x, so c_skip(eps) must be 1, "
                         f"yours is {at_eps[0]:.4g}.{hint}")
    if at_eps[1] is not None and abs(at_eps[1]) > 1e-4:
        raise TutorError(f"the boundary condition fails: c_out(eps) must be 0 (the network has no say at "
                         f"t = eps), yours is {at_eps[1]:.4g}. Use (t - eps) in c_out's numerator.")
    what = f"(sigma_data = {sd:.3f}, eps = {eps:.3f})"
    _compare(out[0], c_skip, f"c_skip {what}", mistakes=[
        ("c_skip = sd² / ((t - eps)² + sd²).", sd**2 / (t**2 + sd**2))])
    _compare(out[1], c_out, f"c_out {what}", mistakes=[
        ("c_out's denominator uses t, not t - eps: c_out = (t - eps) · sd / sqrt(t² + sd²).",
         (t - eps) * sd / ((t - eps) ** 2 + sd**2).sqrt()),
        ("c_out = (t - eps) · sd / sqrt(t² + sd²): the factor sigma_data is missing.",
         (t - eps) / (t**2 + sd**2).sqrt()),
    ])
    _passed("c_skip(eps) = 1, c_out(eps) = 0, and both match precond.consistency_scalings")


def _cd_batch(g: torch.Generator, n_grid: int = 12):
    b = 3
    grid = karras_sigmas(n_grid, 0.002, 80.0, append_zero=False)
    n = torch.randint(0, n_grid - 1, (b,), generator=g)
    x0 = torch.randn(b, _TINY.n_mels, 16, generator=g) * 0.5
    t, t_next = grid[n], grid[n + 1]
    return x0, t, t_next, x0 + append_dims(t, 3) * torch.randn(x0.shape, generator=g)


def check_cd_target(fn: Callable) -> None:
    """T04: ``fn(target, teacher, x_t, t [B], t_next [B]) -> f_target(x_hat_{t_next}, t_next)``
    after one teacher Heun step, under stop-gradient."""
    g = _gen()
    teacher, _, target = _tiny_cm_models(int(torch.randint(2**31, (1,), generator=g)))
    _, t, t_next, x_t = _cd_batch(g)
    with torch.no_grad():
        x_next = teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), None, 1.0)
        want = target(x_next, t_next)
        tn, tt = append_dims(t_next, 3), append_dims(t, 3)
        x_euler = x_t + (x_t - teacher(x_t, t)) / tt * (tn - tt)
        mistakes = [
            ("you gave the target x_t: first take one teacher Heun step from t to t_next.",
             target(x_t, t_next)),
            ("you gave the target x_t at time t: first take one teacher Heun step from t to t_next, "
             "then evaluate the target there.", target(x_t, t)),
            ("evaluate the target at t_next (where the teacher's step landed), not at t.", target(x_next, t)),
            ("that is an Euler step: the teacher takes a Heun step (add the corrector).",
             target(x_euler, t_next)),
            ("you returned the teacher's step itself: pass it through the target network, "
             "target(x_next, t_next).", x_next),
        ]
    got = _call(fn, target, teacher, x_t.clone(), t.clone(), t_next.clone())
    _compare(got, want, "my_cd_target(target, teacher, x_t, t, t_next)", rtol=1e-4, atol=1e-5,
             mistakes=mistakes)
    if isinstance(got, torch.Tensor) and got.requires_grad:
        raise TutorError("the target carries gradients: it must be a stop-gradient target. Compute it "
                         "under `with torch.no_grad():` (or .detach() it).")
    _passed("your CD target matches one teacher Heun step + the target network (no gradient)")


def check_cd_loss(fn: Callable) -> None:
    """T04: ``fn(student, target, teacher, x0, t, t_next, z) -> scalar`` vs
    :func:`ditto2_nb.distill.cd_loss` on the same draws (pseudo-Huber distance)."""
    g = _gen()
    seed = int(torch.randint(2**31, (1,), generator=g))
    teacher, student, target = _tiny_cm_models(seed)
    x0 = torch.randn(3, _TINY.n_mels, 16, generator=g) * 0.5
    cfg = DistillConfig(n_grid=12, w=1.0, distance="pseudo_huber")
    want = cd_loss(student, target, teacher, x0, None, torch.Generator().manual_seed(seed), cfg)
    gen = torch.Generator().manual_seed(seed)  # the same draws, in the library's order
    grid = karras_sigmas(cfg.n_grid, student.sigma_min, student.sigma_max, append_zero=False)
    n = torch.randint(0, cfg.n_grid - 1, (len(x0),), generator=gen)
    t, t_next = grid[n], grid[n + 1]
    z = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        x_t = x0 + append_dims(t, 3) * z
        f_tgt = target(teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), None, 1.0), t_next)
        mistakes = [
            ("the student sees the noisy x_t = x0 + t · z, not the clean x0.",
             pseudo_huber(student(x0, t), f_tgt).mean()),
            ("scale the noise by t: x_t = x0 + t · z.", pseudo_huber(student(x0 + z, t), f_tgt).mean()),
            ("use the pseudo-Huber distance (distill.pseudo_huber), as the library does.",
             (student(x_t, t) - f_tgt).pow(2).flatten(1).mean(1).mean()),
            ("average the per-example distances with .mean(), not .sum().",
             pseudo_huber(student(x_t, t), f_tgt).sum()),
        ]
    got = _call(fn, student, target, teacher, x0.clone(), t.clone(), t_next.clone(), z.clone())
    _compare(got, want, "my_cd_loss(...)", rtol=1e-4, atol=1e-6, mistakes=mistakes)
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        raise TutorError("no gradient reaches the student: compute the student side student(x_t, t) with "
                         "gradients on (only the target goes under torch.no_grad()).")
    got.backward()
    if all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in student.parameters()):
        raise TutorError("no gradient reaches the student's weights: call student(x_t, t) outside "
                         "torch.no_grad() and without .detach().")
    if any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in target.parameters()):
        raise TutorError("gradients reach the target network: the target must be under stop-gradient "
                         "(torch.no_grad()).")
    _passed("your CD loss equals distill.cd_loss on the same draws; gradients reach the student only")


# ============================================================================ T05 CTM


def check_ctm_jump(fn: Callable) -> None:
    """T05: ``fn(x_t, g, t, s) -> G = (s/t) x_t + (1 - s/t) g`` with t, s broadcastable ``[B, 1, 1]``."""
    gen = _gen()
    b = 4
    x_t = torch.randn(b, 6, 8, generator=gen, dtype=torch.float64) * 3.0
    g_val = torch.randn(b, 6, 8, generator=gen, dtype=torch.float64) * 0.5
    t = _log_normal_sigmas(gen, b) + 0.1
    s = t * torch.rand(b, generator=gen, dtype=torch.float64)
    s[0], s[1] = t[0], 0.0  # the two identities: G(x, t, t) = x and G(x, t, 0) = g
    t, s = t.view(-1, 1, 1), s.view(-1, 1, 1)
    r = s / t
    got = _call(fn, x_t.clone(), g_val.clone(), t.clone(), s.clone())
    _compare(got, ctm_jump(x_t, g_val, t, s), "my_ctm_jump(x_t, g, t, s)", rtol=1e-6, atol=1e-8, mistakes=[
        ("the two weights are swapped: at s = t the jump must return x_t itself (G(x, t, t) = x), and at "
         "s = 0 it must return g.", (1 - r) * x_t + r * g_val),
        ("you returned g: mix it with x_t, G = (s/t) · x_t + (1 - s/t) · g.", g_val),
        ("the weight of x_t is s/t, not t/s.",
         (t / s.clamp_min(1e-12)).clamp_max(1e12) * x_t + (1 - r) * g_val),
    ], nonfinite="Dividing by s? s can be 0 (a jump to the clean end): the weight of x_t is s / t.")
    _passed("G(x, t, s) matches precond.ctm_jump, including G(x, t, t) = x and G(x, t, 0) = g")


class _GModel(nn.Module):
    """Wraps a function G(x, t, s) in the interface of :func:`ditto2_nb.distill.ctm_gamma_sample`."""

    def __init__(self, G: Callable, eps: float):
        super().__init__()
        self.G, self.sigma_min = G, eps

    def forward(self, x, t, s, tags=None):
        return self.G(x, t, s)


def check_gamma_step(fn: Callable) -> None:
    """T05: ``fn(G, x, t, t_next, gamma, eps, z) -> x_next``, one CTM gamma-sampling step."""
    g = _gen()
    shape = (2, 4, 6)
    a = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5

    def G(x, t, s):
        return (s / t) * x + (1.0 - s / t) * torch.tanh(a * x)

    eps = 0.05 + 0.2 * float(torch.rand(1, generator=g))
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 5.0
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    t = float(2.0 + 10.0 * torch.rand(1, generator=g))
    cases = [(t, 0.4 * t, gamma) for gamma in (0.0, 0.5, 1.0)] + [(0.3 + eps, 0.0, 0.5)]
    for t, t_next, gamma in cases:
        want = ctm_gamma_sample(_GModel(G, eps), x, [t, t_next], gamma=gamma, noise_fn=lambda _: z)
        s = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps if t_next > 0 else eps
        s_no_eps = (1 - gamma**2) ** 0.5 * t_next
        s_last = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps
        mistakes = [("the noise scale is sqrt(t_next² - s²) (only the noise missing at s), not t_next.",
                     G(x, t, s) + t_next * z)]
        if t_next > 0:
            mistakes += [
                ("s = sqrt(1 - γ²) · (t_next - eps) + eps: the eps terms are missing.",
                 G(x, t, s_no_eps) + max(t_next**2 - s_no_eps**2, 0.0) ** 0.5 * z),
                ("s uses sqrt(1 - γ²), not γ: γ = 0 must jump exactly to t_next with no noise.",
                 G(x, t, gamma * (t_next - eps) + eps)
                 + max(t_next**2 - (gamma * (t_next - eps) + eps) ** 2, 0.0) ** 0.5 * z),
                ("the noise is missing: add sqrt(t_next² - s²) · z after the jump.", G(x, t, s)),
                ("jump first, then add noise: x_next = G(x, t, s) + sqrt(t_next² - s²) · z.",
                 G(x + max(t_next**2 - s**2, 0.0) ** 0.5 * z, t, s)),
            ]
        else:
            mistakes += [("at the last step (t_next = 0) jump to s = eps, with no noise.", G(x, t, s_last)),
                         ("at the last step jump to s = eps, not 0: the student was trained on times down "
                          "to eps (sigma_min) only, and s = 0 is a time it never saw.", G(x, t, 0.0))]
        got = _call(fn, G, x.clone(), t, t_next, gamma, eps, z.clone())
        _compare(got, want, f"my_gamma_step (t={t:.3g}, t_next={t_next:.3g}, γ={gamma:g})", rtol=1e-6,
                 atol=1e-8, mistakes=mistakes,
                 nonfinite="At the last step (t_next = 0) jump to s = eps with no noise; before "
                           "it, s <= t_next keeps t_next² - s² >= 0 under the square root.")
    _passed("your gamma step matches distill.ctm_gamma_sample for γ = 0, 0.5, 1 and the last step (to eps)")


# ============================================================================ T06 DITTO and DITTO-2


class _Counted(nn.Module):
    """A small denoiser that counts how often it runs (forward passes and recomputations)."""

    def __init__(self, shape: tuple[int, ...], g: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64) * 0.5)
        self.calls = 0

    def forward(self, x, sigma):
        self.calls += 1
        return torch.tanh(self.w * x) / (1.0 + torch.as_tensor(sigma, dtype=x.dtype))


def check_checkpointed(fn: Callable) -> None:
    """T06: ``fn(denoise) -> denoise'``, the same function with gradient checkpointing (same values
    and gradients; the forward pass runs again during backward instead of storing activations)."""
    g = _gen()
    shape = (2, 3, 5)
    net = _Counted(shape, g)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    sigmas = [torch.tensor(s, dtype=torch.float64) for s in (3.0, 1.0, 0.3)]

    def run(step):
        net.zero_grad()
        net.calls = 0
        x = x0.clone().requires_grad_(True)
        h = x
        for s in sigmas:
            h = step(h, s)
        (h**2).sum().backward()
        return h.detach(), x.grad, net.w.grad, net.calls

    ref_out, ref_gx, ref_gw, _ = run(net)
    wrapped = _call(fn, net)
    if not callable(wrapped):
        raise TutorError(f"my_checkpointed should return a function (the wrapped denoiser), got "
                         f"{type(wrapped).__name__}.")
    out, gx, gw, calls = run(lambda x, s: _call(wrapped, x, s, what="the wrapped denoiser"))
    _compare(out, ref_out, "the wrapped denoiser's output", rtol=1e-6, atol=1e-9)
    if gx is None or gw is None:
        raise TutorError("no gradient flows through the wrapped denoiser (to x or to the weights): pass x "
                         "and sigma as arguments to checkpoint(...), and use use_reentrant=False.")
    _compare(gx, ref_gx, "the gradient with respect to x through the wrapped denoiser", rtol=1e-6, atol=1e-9)
    _compare(gw, ref_gw, "the gradient with respect to the weights", rtol=1e-6, atol=1e-9)
    n = len(sigmas)
    if calls < 2 * n:
        raise TutorError(f"no recomputation happened: the denoiser ran {calls} times for {n} steps (expected "
                         f"{2 * n}: once forward, once more during backward). Wrap each call in "
                         "torch.utils.checkpoint.checkpoint(denoise, x, sigma, use_reentrant=False).")
    _passed(f"same values and gradients, and the denoiser ran {calls} times for {n} steps "
            "(recomputed in backward instead of stored)")


def _reference_optimise(generate, loss_fn, z0, iterations, lr, *, zero_grad=True, opt="adam",
                        maximize=False):
    z = z0.detach().clone().requires_grad_(True)
    o = torch.optim.Adam([z], lr=lr, maximize=maximize) if opt == "adam" else torch.optim.SGD([z], lr=lr)
    losses = []
    for _ in range(iterations):
        per_example = loss_fn(generate(z))
        if zero_grad:
            o.zero_grad(set_to_none=True)
        per_example.sum().backward()
        o.step()
        losses.append(per_example.mean().item())
    return z.detach(), losses


def _losses_list(losses, iterations: int, what: str) -> torch.Tensor:
    if isinstance(losses, torch.Tensor):
        losses = losses.detach().reshape(-1).tolist() if losses.ndim <= 1 else None
    if not isinstance(losses, (list, tuple)) or len(losses) != iterations:
        n = len(losses) if isinstance(losses, (list, tuple)) else type(losses).__name__
        raise TutorError(f"{what}: record one loss per iteration ({iterations} numbers), got {n}.")
    try:
        return torch.tensor([float(v) for v in losses], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TutorError(f"{what}: each recorded loss should be one number (per_example.mean().item()), "
                         f"got {type(losses[0]).__name__} of shape "
                         f"{list(getattr(losses[0], 'shape', []))}.") from None


def check_optimise(fn: Callable) -> None:
    """T06: ``fn(generate, loss_fn, z0, iterations, lr) -> (z, losses)``, Adam on the noise z."""
    g = _gen()
    b, dim = 3, 6
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    y = torch.rand(dim, generator=g, dtype=torch.float64) - 0.5
    generate = lambda z: torch.tanh(z @ a)  # noqa: E731
    loss_fn = lambda x: ((x - y) ** 2).mean(-1)  # noqa: E731 - one loss per example [B]
    z0 = torch.randn(b, dim, generator=g, dtype=torch.float64)
    iterations = int(torch.randint(5, 12, (1,), generator=g))
    lr = 0.02 + 0.08 * float(torch.rand(1, generator=g))
    z_ref, loss_ref = _reference_optimise(generate, loss_fn, z0, iterations, lr)
    z0_copy = z0.clone()
    out = _tuple_of(_call(fn, generate, loss_fn, z0, iterations, lr), 2, "my_optimise", "z, losses")
    if not torch.equal(z0, z0_copy):
        raise TutorError("my_optimise changed z0 in place: work on a copy, z = z0.detach().clone()"
                         ".requires_grad_(True).")
    z = _as_tensor(out[0], "the optimised z")
    losses = _losses_list(out[1], iterations, "my_optimise")
    if _close(z.detach().double(), z0.double(), 0, 1e-12):
        raise TutorError("z never changed: call opt.step() after loss.backward() in every iteration (and "
                         "give the optimiser the tensor you optimise: torch.optim.Adam([z], lr=lr)).")
    _compare(losses[0], torch.tensor(loss_ref[0], dtype=torch.float64), "the first recorded loss",
             rtol=1e-5, atol=1e-8, mistakes=[
                 ("record the mean over the batch, per_example.mean().item(), not the sum.",
                  torch.tensor(loss_ref[0] * b, dtype=torch.float64))])
    cands = [("gradients pile up across iterations: call opt.zero_grad() before each backward().",
              dict(zero_grad=False)),
             ("that is gradient *ascent*: the loss must go down (minimise; don't negate the gradient).",
              dict(maximize=True)),
             ("use Adam (torch.optim.Adam([z], lr=lr)), as DITTO does, not plain SGD.", dict(opt="sgd"))]
    _compare(z, z_ref, f"z after {iterations} iterations", rtol=1e-4, atol=1e-6, mistakes=[
        (msg, _reference_optimise(generate, loss_fn, z0, iterations, lr, **kw)[0]) for msg, kw in cands])
    _compare(losses, torch.tensor(loss_ref, dtype=torch.float64), "the recorded losses", rtol=1e-4,
             atol=1e-7, hint=" Record each iteration's loss before opt.step() changes z.")
    _passed(f"your loop reproduces Adam on z ({iterations} iterations, lr {lr:.3f}); "
            f"loss {loss_ref[0]:.4f} -> {loss_ref[-1]:.4f}")


def check_ditto2(fn: Callable) -> None:
    """T06: ``fn(student, loss_fn, z0, iterations, lr, decode_steps) -> (z, x0)`` vs
    :func:`ditto2_nb.optimize.ditto2` (1-step surrogate in the loop, one ``decode_steps`` decode)."""
    g = _gen()
    _, student, _ = _tiny_cm_models(int(torch.randint(2**31, (1,), generator=g)))
    student.requires_grad_(False)
    frames = 16
    y = torch.rand(frames, generator=g) - 0.5
    loss_fn = lambda mel: ((mel.mean(1) - y) ** 2).mean(-1)  # noqa: E731 - [B]
    z0 = torch.randn(2, _TINY.n_mels, frames, generator=g)
    iterations, lr = int(torch.randint(4, 9, (1,), generator=g)), 0.05
    ref = ditto2(student, loss_fn, z0, decode_steps=2, decode_seed=0,
                 cfg=OptimConfig(iterations=iterations, lr=lr, snapshot_every=0))
    out = _tuple_of(_call(fn, student, loss_fn, z0.clone(), iterations, lr, 2), 2, "my_ditto2", "z, x0")
    one_step = lambda z: student_decode(student, z * student.sigma_max, 1)  # noqa: E731
    unscaled = lambda z: student_decode(student, z, 1)  # noqa: E731
    z_unscaled, _ = _reference_optimise(unscaled, loss_fn, z0, iterations, lr)
    _compare(out[0], ref.z, "the optimised z", rtol=1e-4, atol=1e-5, mistakes=[
        ("the student starts from x_T = z · sigma_max: multiply z by student.sigma_max before the jump.",
         z_unscaled)], hint=" Optimise through the 1-step surrogate: student_decode(student, "
                            "z * student.sigma_max, 1) inside my_optimise.")
    with torch.no_grad():
        x_one = one_step(ref.z)
        x_other_seed = student_decode(student, ref.z * student.sigma_max, 2, seed=1)
        x_unscaled = student_decode(student, ref.z, 2)
    _compare(out[1], ref.x0, "the decoded x0", rtol=1e-4, atol=1e-5, mistakes=[
        ("x0 is the 1-step surrogate: after the loop, decode once with decode_steps steps.", x_one),
        ("decode from x_T = z · sigma_max.", x_unscaled),
        ("fix the decode's injected noise with seed=0 (student_decode(..., seed=0)).", x_other_seed),
    ])
    _passed(f"z and the {2}-step decode match optimize.ditto2 ({iterations} iterations on a small random "
            "student)")


# ============================================================================ T07 your own control


def spectral_centroid_hz(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Brightness: the power-weighted mean of the mel bins' centre frequencies, ``[B, M, T] -> [B, T]`` Hz.

    The reference for T07's exercise (not a library control: the tutorial builds it).
    """
    power = norm_to_power(mel, cfg)  # [B, M, T]
    centres = mel_centre_hz(cfg).to(mel)  # [M]
    return (power * centres[:, None]).sum(1) / power.sum(1).clamp_min(1e-12)


def _random_mels(g: torch.Generator, cfg: MelConfig, b: int = 3, frames: int = 24) -> torch.Tensor:
    base = torch.rand(b, cfg.n_mels, 1, generator=g) * 1.4 - 1.0
    return (base + 0.3 * torch.randn(b, cfg.n_mels, frames, generator=g)).clamp(-1.0, 1.0)


def check_brightness(fn: Callable) -> None:
    """T07: ``fn(mel [B, M, T], cfg) -> [B, T]`` spectral centroid in Hz, differentiable."""
    g = _gen()
    cfgs = [MelConfig(), MelConfig(n_mels=int(torch.randint(24, 80, (1,), generator=g)), f_max=7000.0)]
    for cfg in cfgs:
        mel = _random_mels(g, cfg)
        want = spectral_centroid_hz(mel, cfg)
        centres = mel_centre_hz(cfg)[:, None]
        p = norm_to_power(mel, cfg)
        bins = torch.arange(cfg.n_mels, dtype=torch.float32)[:, None]

        def weighted(wts, centres=centres):
            return (wts * centres).sum(1) / wts.sum(1)

        mistakes = [
            ("weight the frequencies by power (audio.norm_to_power(mel, cfg)), not by the normalised mel "
             "values (which are negative for quiet bins).", weighted(mel)),
            ("weight by power, not by decibels.", weighted(norm_to_db(mel, cfg))),
            ("these look like mel-bin indices: use each bin's centre frequency in Hz "
             "(controls.mel_centre_hz(cfg)).", (p * bins).sum(1) / p.sum(1)),
            ("this exercise weights by power P, not by magnitude sqrt(P).", weighted(p.sqrt())),
            ("divide by the total power of the frame (a weighted *mean*).", (p * centres).sum(1)),
        ]
        x = mel.clone().requires_grad_(True)
        got = _call(fn, x, cfg)
        _compare(got, want, f"my_brightness(mel, cfg) with n_mels={cfg.n_mels}, f_max={cfg.f_max:g}",
                 rtol=1e-3, atol=0.5, mistakes=mistakes,
                 hint=" The centroid is Σ_m f_m · P_m / Σ_m P_m over the mel axis (dim=1).")
        _needs_grad(got, "my_brightness", "the mel").sum().backward()
        if x.grad is None or not torch.isfinite(x.grad).all() or float(x.grad.abs().sum()) == 0:
            raise TutorError("my_brightness is not differentiable: the gradient with respect to the mel "
                             "is missing, zero or NaN.")
    _passed(f"your brightness matches the power-weighted centroid (Hz) for n_mels = "
            f"{', '.join(str(c.n_mels) for c in cfgs)}, and gradients reach the mel")


def check_brightness_loss(fn: Callable) -> None:
    """T07: ``fn(target_hz [T], cfg) -> loss`` with ``loss(mel [B, M, T]) -> [B]``: the mean over
    frames of (log2 centroid - log2 target)², in octaves²."""
    g = _gen()
    cfg = MelConfig()
    mel = _random_mels(g, cfg, b=3, frames=20)
    target = 400.0 * 2.0 ** (torch.rand(20, generator=g) * 3.0)  # 400 Hz .. 3.2 kHz
    c = spectral_centroid_hz(mel, cfg)
    want = (torch.log2(c) - torch.log2(target)).pow(2).mean(-1)
    loss = _call(fn, target.clone(), cfg)
    if not callable(loss):
        raise TutorError(f"make_brightness_loss should return a function loss(mel) -> [B], got "
                         f"{type(loss).__name__}.")
    x = mel.clone().requires_grad_(True)
    got = _call(loss, x, what="the loss function returned by make_brightness_loss")
    _compare(got, want, "loss(mel)", rtol=1e-3, atol=1e-5, mistakes=[
        ("compare in octaves, log2(centroid) - log2(target): being 100 Hz off at 200 Hz should count as "
         "much as 1 kHz off at 2 kHz.", (c - target).pow(2).mean(-1)),
        ("use log2 (octaves), not the natural log.", (c.log() - target.log()).pow(2).mean(-1)),
        ("square the octave error (squared error), not its absolute value.",
         (torch.log2(c) - torch.log2(target)).abs().mean(-1)),
        ("average over frames with .mean(-1), not .sum(-1).",
         (torch.log2(c) - torch.log2(target)).pow(2).sum(-1)),
    ])
    _needs_grad(got, "the loss", "the mel").sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or float(x.grad.abs().sum()) == 0:
        raise TutorError("the loss is not differentiable with respect to the mel (missing, zero or NaN "
                         "gradient).")
    _passed("your loss gives one octave² error per example and is differentiable")


# ============================================================================ solutions

SOLUTION_SECTION = re.compile(r"^# %% (\S+)\s*$")


def solution_sections(path: str | Path) -> dict[str, str]:
    """``{exercise cell id: source}`` from the ``# %% <cell id>`` sections of a solutions file
    (``tutorials/solutions/T0x_name.py``)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in Path(path).read_text().splitlines():
        m = SOLUTION_SECTION.match(line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() + "\n" for k, v in sections.items()}


def with_solutions(nb, sections: dict[str, str]):
    """A copy of notebook ``nb`` whose cells tagged ``exercise`` hold the solutions."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            if cell.id not in sections:
                raise KeyError(f"no solution for exercise cell {cell.id!r}")
            cell.source = sections[cell.id]
    return nb
