"""Synthesis: render a composed clip to audio with band-limited wavetables, ADSR envelopes, a pad,
a bass and drums, then apply its dynamics curve; the intensity label includes the safety gain.

Clip ``k`` of a dataset with base seed ``s`` is ``synthesize_clip(s + k)``: the same clip whatever
batch it is generated in.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..core import validate as check
from ..core.config import MelConfig
from .composition import _clip_length, _compose_score
from .labels import Chord, ClipLabels
from .theory import BASS_LOW, DRUM_PATTERNS, PAD_LOW, midi_to_hz

_TABLE_SIZE = 4096  # samples per wavetable cycle (power of two)
_MAX_HARMONICS = 64

_ADSR = {  # attack s, decay time constant s, sustain level, release s
    "sine": (0.01, 0.12, 0.8, 0.05),
    "square": (0.005, 0.1, 0.7, 0.04),
    "sawtooth": (0.008, 0.12, 0.7, 0.05),
    "triangle": (0.01, 0.12, 0.85, 0.05),
    "organ": (0.004, 0.05, 0.95, 0.03),
    "pluck": (0.002, 0.22, 0.15, 0.04),
    "pad": (0.06, 0.4, 0.75, 0.12),
    "bass": (0.008, 0.25, 0.6, 0.06),
}
MIX_GAINS = {"melody": 0.36, "pad": 0.06, "bass": 0.14, "kick": 0.28, "snare": 0.12, "hat": 0.05}
PEAK_LIMIT = 0.9


def _harmonic_amplitudes(name: str) -> np.ndarray:
    """Amplitude of harmonics ``1..H`` ``[H]`` for each timbre."""
    k = np.arange(1, _MAX_HARMONICS + 1, dtype=np.float64)
    odd = k % 2 == 1
    if name == "sine":
        return (k == 1).astype(np.float64)
    if name == "square":
        return np.where(odd, 1.0 / k, 0.0)
    if name == "sawtooth":
        return 1.0 / k
    if name == "triangle":
        return np.where(odd, (-1.0) ** ((k - 1) // 2) / k**2, 0.0)
    if name == "pluck":
        return k**-1.5
    partials = {"organ": {1: 1.0, 2: 0.7, 3: 0.45, 4: 0.3, 6: 0.2, 8: 0.15},
                "pad": {1: 1.0, 2: 0.25, 3: 0.08}, "bass": {1: 1.0, 2: 0.35, 3: 0.12}}[name]
    return np.array([partials.get(int(h), 0.0) for h in k])


@lru_cache(maxsize=16)
def _wavetables(name: str) -> np.ndarray:
    """Band-limited single-cycle tables ``[H, N]``: row ``h - 1`` holds harmonics ``1..h``.

    Picking the row per note from its fundamental keeps every partial below Nyquist (no aliasing).
    Rows are normalised to peak 1.
    """
    x = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    partial = _harmonic_amplitudes(name)[:, None] * np.sin(
        2 * np.pi * np.arange(1, _MAX_HARMONICS + 1)[:, None] * x)
    tables = np.cumsum(partial, axis=0)
    return (tables / np.abs(tables).max(axis=1, keepdims=True)).astype(np.float32)


@lru_cache(maxsize=32)
def _adsr_curve(timbre: str, sr: int, length: int) -> np.ndarray:
    """Attack-decay-sustain part of the envelope ``[length]``: linear attack, exponential decay."""
    a, d, sustain, _ = _ADSR[timbre]
    t = np.arange(length) / sr
    att = np.minimum(t / a, 1.0)
    return (att * (sustain + (1 - sustain) * np.exp(-np.maximum(t - a, 0.0) / d))).astype(
        np.float32)


@lru_cache(maxsize=4)
def _ramp(length: int) -> np.ndarray:
    return np.arange(length, dtype=np.float64)


def _envelope(timbre: str, sr: int, length: int) -> np.ndarray:
    """Note envelope ``[length]``: ADSR gated ``release`` s before the end, then a linear release
    reaching zero at the note's end (so consecutive notes never click)."""
    release = min(round(_ADSR[timbre][3] * sr), length // 2)
    gate = length - release
    ads = _adsr_curve(timbre, sr, _pow2(length))[:gate]
    peak = ads[-1] if gate else 0.0
    tail = peak * (1.0 - np.arange(1, release + 1, dtype=np.float32) / max(release, 1))
    return np.concatenate([ads, tail])


def _pow2(x: int) -> int:
    return 1 << max(int(x) - 1, 1).bit_length()


def _render_voices(onset: np.ndarray, duration: np.ndarray, midi: np.ndarray, amp: np.ndarray,
                   timbre: str, sr: int, n: int) -> np.ndarray:
    """Render ``V`` monophonic voices that share note timings into one signal ``[n]``.

    Parameters
    ----------
    onset, duration : ``[notes]`` seconds, sorted and non-overlapping.
    midi, amp : ``[V, notes]`` pitch and linear amplitude of note ``k`` in voice ``v``.

    Each note is a phase ramp (constant frequency: the running sum of the per-sample phase
    increment ``f / sr``) read through a band-limited wavetable, times :func:`_envelope`. The
    wavetable row is picked per note so that no partial exceeds 0.45 ``sr`` (no aliasing).
    """
    out = np.zeros(n, np.float32)
    midi = np.atleast_2d(midi)
    amp = np.broadcast_to(np.atleast_2d(amp), midi.shape).astype(np.float32)
    freq = midi_to_hz(midi)  # [V, notes]
    inc = freq * (_TABLE_SIZE / sr)  # table samples per audio sample
    rows = (np.clip(np.floor(0.45 * sr / freq), 1, _MAX_HARMONICS).astype(np.int64) - 1)
    table = _wavetables(timbre).ravel()
    ramp = _ramp(_pow2(n))
    for j in range(len(onset)):
        s0 = round(onset[j] * sr)
        length = max(round(duration[j] * sr), 1)
        env = _envelope(timbre, sr, length)[: max(n - s0, 0)]
        if len(env) == 0:
            continue
        phase = (ramp[: len(env)] * inc[:, j: j + 1]).astype(np.int64) & (_TABLE_SIZE - 1)
        wave = table[phase + rows[:, j: j + 1] * _TABLE_SIZE]  # [V, length]
        out[s0: s0 + len(env)] += (amp[:, j] @ wave) * env
    return out


@lru_cache(maxsize=4)
def _kick(sr: int) -> np.ndarray:
    """A decaying sine with a falling pitch (110 -> 45 Hz), 0.25 s."""
    t = np.arange(int(0.25 * sr)) / sr
    f = 45.0 + 75.0 * np.exp(-t / 0.04)
    return (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.09)).astype(np.float32)


def _drum_samples(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    """Kick (sine sweep), snare (high-passed noise + 185 Hz tone), hat (twice-differenced noise)."""
    t_s = np.arange(int(0.2 * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t_s) + 1)) * 0.5
    snare = (0.7 * noise * np.exp(-t_s / 0.06)
             + 0.5 * np.sin(2 * np.pi * 185.0 * t_s) * np.exp(-t_s / 0.05))
    t_h = np.arange(int(0.08 * sr)) / sr
    hat = np.diff(rng.standard_normal(len(t_h) + 2), n=2) * 0.4 * np.exp(-t_h / 0.015)
    return {"kick": _kick(sr), "snare": snare.astype(np.float32), "hat": hat.astype(np.float32)}


def _render_drums(pattern: str, bpm: float, rng: np.random.Generator, sr: int,
                  n: int) -> np.ndarray:
    """One drum pattern repeated on the eighth-note grid from t = 0 ``[n]``."""
    out = np.zeros(n, np.float32)
    samples = _drum_samples(rng, sr)
    step = 30.0 / bpm * sr
    n_steps = math.ceil(n / step)
    velocity = rng.uniform(0.8, 1.0, size=(3, n_steps))
    for i in range(n_steps):
        pos = round(i * step)
        for j, (drum, hits) in enumerate(DRUM_PATTERNS[pattern].items()):
            if hits[i % 8] == "x":
                s = samples[drum][: n - pos]
                out[pos: pos + len(s)] += MIX_GAINS[drum] * velocity[j, i] * s
    return out


def _synthesize(lab: ClipLabels, rng: np.random.Generator, n: int) -> tuple[np.ndarray, float]:
    """Render a composed clip -> (wave ``[n]`` float32, safety gain in dB)."""
    sr = lab.sample_rate
    mel = np.array([(x.onset, x.duration, x.midi) for x in lab.notes]).reshape(-1, 3)
    velocity = rng.uniform(0.75, 1.0, size=len(mel))
    mix = _render_voices(mel[:, 0], mel[:, 1], mel[None, :, 2],
                         MIX_GAINS["melody"] * velocity[None], lab.instrument, sr, n)
    ch = np.array([(c.onset, c.duration) for c in lab.chords]).reshape(-1, 2)
    triads = np.array([_triad_pcs(c) for c in lab.chords]).reshape(-1, 3).T  # [3, chords]
    pad = PAD_LOW + (triads - PAD_LOW) % 12
    mix += _render_voices(ch[:, 0], ch[:, 1], pad, np.full(pad.shape, MIX_GAINS["pad"]), "pad",
                          sr, n)
    bass = BASS_LOW + (triads[:1] - BASS_LOW) % 12
    mix += _render_voices(ch[:, 0], ch[:, 1], bass, np.full(bass.shape, MIX_GAINS["bass"]),
                          "bass", sr, n)
    if lab.has_drums:
        mix += _render_drums(lab.drum_pattern, lab.bpm, rng, sr, n)
    times = np.arange(n) / sr
    mix *= (10.0 ** (np.interp(times, lab.frame_times(), lab.intensity_db) / 20.0)).astype(
        np.float32)
    peak = float(np.abs(mix).max()) if n else 0.0
    gain = min(1.0, PEAK_LIMIT / peak) if peak > 0 else 1.0
    return (mix * gain).astype(np.float32), 20.0 * math.log10(gain)


def _triad_pcs(c: Chord) -> tuple[int, int, int]:
    third = 4 if c.quality == "maj" else 3
    fifth = 6 if c.quality == "dim" else 7
    return c.root, (c.root + third) % 12, (c.root + fifth) % 12


def synthesize_clip(seed: int, cfg: MelConfig,
                    seconds: float | None = None) -> tuple[np.ndarray, ClipLabels]:
    """Procedural clip number ``seed``: (wave ``[L]`` float32, its exact labels).

    The intensity label already includes the (rare, <= 0 dB) safety gain that keeps the peak at or
    below 0.9.
    """
    rng = np.random.default_rng(check.integer("seed", seed, 0, meaning="clip number; numpy seeds are >= 0"))
    n = _clip_length(cfg, seconds)
    lab = _compose_score(rng, seed, cfg, n)
    wave, gain_db = _synthesize(lab, rng, n)
    if gain_db < 0:
        lab.gain_db = gain_db
        lab.intensity_db = (lab.intensity_db + gain_db).astype(np.float32)
    return wave, lab


def generate_clips(n: int, seed: int, cfg: MelConfig,
                   seconds: float | None = None) -> tuple[np.ndarray, list[ClipLabels]]:
    """Generate procedural clips ``seed, seed + 1, ..., seed + n - 1``.

    Parameters
    ----------
    n : number of clips.
    seed : base seed; clip ``k`` uses ``default_rng(seed + k)``, so it is the same clip whatever
        the batch it is generated in.
    cfg : sample rate and hop (for the per-frame labels); length ``cfg.n_samples`` unless
        ``seconds`` is given.

    Returns
    -------
    waves : float32 ``[n, L]``, peak <= 0.9.
    labels : ``n`` :class:`ClipLabels`.
    """
    n = check.integer("n", n, 0, meaning="clips to generate")
    check.integer("seed", seed, 0, meaning="the first clip's number; numpy seeds are >= 0")
    length = _clip_length(cfg, seconds)
    waves = np.empty((n, length), np.float32)
    labels = []
    for k in range(n):
        waves[k], lab = synthesize_clip(seed + k, cfg, seconds)
        labels.append(lab)
    return waves, labels
