"""Checks of T01 (audio and mels): the HTK mel scale, a triangular mel filterbank, and log
compression to [-1, 1]."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torchaudio.functional as AF

from ...audio.mel import db_to_norm, mel_filterbank, power_to_db
from ...core.config import MelConfig
from .checking import (
    TutorError,
    _call,
    _compare,
    _gen,
    _passed,
)

# ============================================================================ T01 audio and mels


def _htk_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def check_hz_to_mel(hz_to_mel: Callable, mel_to_hz: Callable | None = None) -> None:
    """T01: the HTK mel scale ``m = 2595 log10(1 + f / 700)`` (derived in the tutorial from its form
    ``a log(1 + f / 700)`` and its convention m(1000 Hz) = 1000 mel) and (optionally) its inverse."""
    g = _gen()
    hz = torch.rand(40, generator=g, dtype=torch.float64) * 11_000.0
    hz[0] = 0.0
    got = _call(hz_to_mel, hz.clone())
    at_1000 = _call(hz_to_mel, torch.tensor([1000.0], dtype=torch.float64), what="hz_to_mel(1000 Hz)")
    m1000 = float(torch.as_tensor(at_1000, dtype=torch.float64).reshape(-1)[0])
    if abs(m1000 - 1000.0) > 0.1 and torch.as_tensor(got).shape == hz.shape:
        ratio = torch.as_tensor(got, dtype=torch.float64)[1:] / _htk_mel(hz)[1:]  # hz[0] = 0
        if float(ratio.std()) <= 1e-4 * float(ratio.mean().abs()):  # the right curve, the wrong constant
            natural = (" (it is 2595 · ln(1 + f / 700): the constant for log10 with the natural log)"
                       if abs(m1000 - 2595.0 * float(torch.log1p(torch.tensor(1000.0 / 700.0)))) < 0.1 else
                       ": the shape of your curve is right, only the constant is off")
            raise TutorError(f"hz_to_mel(1000 Hz) = {m1000:.6g} mel{natural}, but the HTK convention puts "
                             "1000 Hz at exactly 1000 mel. Choose the constant a in a · log(1 + f / 700) so "
                             "that m(1000) = 1000 (any log base works, if you use the same one for a).")
    _compare(got, _htk_mel(hz), "hz_to_mel(f)", rtol=1e-4, atol=1e-2, mistakes=[
        ("you used the natural log: the HTK formula is 2595 · log10(1 + f / 700) "
         "(or, the same thing, 1127 · ln(1 + f / 700)).", 2595.0 * torch.log1p(hz / 700.0)),
        ("f / 700 and 700 / f are swapped: m = 2595 · log10(1 + f / 700).",
         2595.0 * torch.log10(1.0 + 700.0 / hz.clamp_min(1e-9))),
    ], nonfinite="The log of zero at f = 0 Hz? The formula is log10(1 + f / 700), which is 0 at 0 Hz.",
       hint=" The form is m = a · log(1 + f / 700), with a set by m(1000 Hz) = 1000 mel.")
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
    """Triangular filters ``[n_freq, n_mels]`` peaking at 1 between consecutive ``edges`` (``n_mels + 2`` of
    them)."""
    width = edges[1:] - edges[:-1]  # [n_mels + 1]
    rel = edges[None, :] - freqs[:, None]  # [n_freq, n_mels + 2]
    rising = -rel[:, :-2] / width[:-1]
    falling = rel[:, 2:] / width[1:]
    return torch.minimum(rising, falling).clamp_min(0.0)


def check_mel_filterbank(fn: Callable[[MelConfig], torch.Tensor]) -> None:
    """T01: ``fn(cfg) -> [n_freq, n_mels]`` triangular HTK mel filters (peak 1),
    ``n_freq = n_fft // 2 + 1``."""
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
    """T01: ``fn(power [B, n_mels, frames], cfg) -> [B, n_mels, frames]``: 10 log10 power
    in dB, [db_min, db_max] -> [-1, 1]."""
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
