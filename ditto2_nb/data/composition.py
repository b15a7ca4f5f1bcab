"""Composition: the score of procedural clip ``seed``, drawn from ``numpy.random.default_rng(seed)``.

Tempo, key, a melody on an eighth-note grid (a random walk snapped to chord tones), one diatonic
triad per bar, optional drums, a timbre, a dynamics curve in dB and a section structure such as
``"ABA"``: every label is the exact score the synthesiser then plays (:mod:`.synthesis`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.config import MelConfig
from .labels import Chord, ClipLabels, Note, Section, _pitch_class, _pitch_per_frame
from .theory import (
    DRUM_PATTERNS,
    DYNAMICS,
    INSTRUMENTS,
    MELODY_RANGE,
    MODES,
    NOTE_NAMES,
    PROGRESSIONS,
    SCALES,
    STRUCTURES,
    TEMPO_CLASSES,
    TEMPO_JITTER,
    _triad,
)


def _draw(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _walk_choice(u: float, values: Sequence[int], probs: Sequence[float]) -> int:
    """Inverse-CDF draw from a small discrete distribution given a uniform ``u``."""
    return values[min(int(np.searchsorted(np.cumsum(probs), u)), len(values) - 1)]


_LENGTH_PROBS = {"slow": (0.45, 0.4, 0.05, 0.1), "medium": (0.35, 0.45, 0.05, 0.15),
                 "fast": (0.2, 0.5, 0.05, 0.25)}  # P(1, 2, 3, 4 eighths)
_STEPS, _STEP_PROBS = (-3, -2, -1, 0, 1, 2, 3), (0.05, 0.15, 0.28, 0.1, 0.27, 0.1, 0.05)
REST_PROB = 0.1


def _melody(rng: np.random.Generator, scale_notes: np.ndarray, start: int, n_eighths: int,
            chord_pcs: Sequence[tuple[int, int, int]], tempo: str) -> list[tuple[int, int, int]]:
    """A melody as ``(start eighth, length in eighths, midi or 0 for a rest)``.

    A random walk over ``scale_notes`` (mostly steps), snapped to a chord tone on each bar's
    downbeat. Rests are rare (``REST_PROB``), never two in a row, never in the first beat, at most
    a quarter long (an eighth in sections shorter than a bar, none below two beats).
    """
    u = rng.random((3, n_eighths))  # lengths, steps, rests: drawn at once (fast, deterministic)
    pos, e, out, prev_rest = start, 0, [], True
    pcs = scale_notes % 12
    for i in range(n_eighths):
        if e >= n_eighths:
            break
        length = min(_walk_choice(u[0, i], (1, 2, 3, 4), _LENGTH_PROBS[tempo]), n_eighths - e)
        if not prev_rest and e >= 2 and n_eighths >= 4 and u[2, i] < REST_PROB:
            length = min(length, 2 if n_eighths >= 8 else 1)
            out.append((e, length, 0))
            prev_rest, e = True, e + length
            continue
        pos = int(np.clip(pos + _walk_choice(u[1, i], _STEPS, _STEP_PROBS), 0, len(pcs) - 1))
        if e % 8 == 0:  # downbeat of a bar: move to the nearest chord tone
            tones = np.flatnonzero(np.isin(pcs, chord_pcs[(e // 8) % len(chord_pcs)]))
            pos = int(tones[np.argmin(np.abs(tones - pos))])
        out.append((e, length, int(scale_notes[pos])))
        prev_rest, e = False, e + length
    return out


def _progressions(rng: np.random.Generator, mode: str, n: int) -> list[tuple[int, ...]]:
    """``n`` different progressions; the later ones start on a different chord from the first."""
    choices = list(PROGRESSIONS[mode])
    first = choices.pop(int(rng.integers(len(choices))))
    out = [first]
    for _ in range(n - 1):
        p = choices.pop(int(rng.integers(len(choices))))
        while p[0] == first[0]:
            p = p[1:] + p[:1]
        out.append(p)
    return out


def _intensity_db(rng: np.random.Generator, shape: str, u: np.ndarray) -> np.ndarray:
    """Dynamics curve in dB over normalised time ``u`` in [0, 1) ``[frames]``."""
    low, high = -rng.uniform(20.0, 26.0), -rng.uniform(0.0, 2.0)
    c = rng.uniform(0.35, 0.65)
    if shape == "loud":
        db = np.full_like(u, high)
    elif shape == "soft":
        db = np.full_like(u, -rng.uniform(17.0, 21.0))
    elif shape == "crescendo":
        db = low + (high - low) * u
    elif shape == "decrescendo":
        db = high + (low - high) * u
    elif shape == "swell":
        db = low + (high - low) * np.where(u < c, u / c, (1.0 - u) / (1.0 - c))
    elif shape == "sudden":
        db = np.where(u < c, low, high)
    else:
        raise ValueError(f"unknown dynamics shape {shape!r}; choose one of {DYNAMICS}")
    return db.astype(np.float32)


def _clip_length(cfg: MelConfig, seconds: float | None) -> int:
    if seconds is None:
        return cfg.n_samples
    n = round(seconds * cfg.sample_rate)
    if n < cfg.hop_length:
        raise ValueError(f"seconds={seconds} gives fewer samples than one hop ({cfg.hop_length})")
    return n


def _compose_score(rng: np.random.Generator, seed: int, cfg: MelConfig, n_samples: int) -> ClipLabels:
    sr, hop = cfg.sample_rate, cfg.hop_length
    dur = n_samples / sr
    tempo = _draw(rng, tuple(TEMPO_CLASSES))
    bpm = round(TEMPO_CLASSES[tempo] + rng.uniform(-TEMPO_JITTER, TEMPO_JITTER), 1)
    tonic, mode = int(rng.integers(12)), _draw(rng, MODES)
    instrument, dynamics = _draw(rng, INSTRUMENTS), _draw(rng, DYNAMICS)
    drum_pattern = _draw(rng, tuple(DRUM_PATTERNS))
    has_drums = bool(rng.random() < 0.6)
    eighth = 30.0 / bpm
    n_eighths = dur / eighth
    # Every section needs at least one eighth; very short clips fall back to shorter forms.
    structure = _draw(rng, [s for s in STRUCTURES if len(s) <= n_eighths] or ["A"])
    n_sec = len(structure)
    bounds = [math.floor(i * n_eighths / n_sec + 0.5) for i in range(n_sec)]
    bounds.append(math.ceil(n_eighths))
    lo, hi = MELODY_RANGE
    scale_notes = np.array([m for m in range(lo, hi + 1) if (m - tonic) % 12 in SCALES[mode]])
    letters = sorted(set(structure))
    progs = dict(zip(letters, _progressions(rng, mode, len(letters)), strict=True))
    longest = max(b - a for a, b in itertools.pairwise(bounds))
    material = {}
    for letter in letters:
        triads = [_triad(tonic, mode, d)[3] for d in progs[letter]]
        tonic_idx = np.flatnonzero(scale_notes % 12 == tonic)
        start = int(_draw(rng, tonic_idx[:2])) + int(rng.integers(0, 3))
        material[letter] = _melody(rng, scale_notes, start, longest, triads, tempo)

    notes, chords, sections = [], [], []
    for i, letter in enumerate(structure):
        e0, e1 = bounds[i], bounds[i + 1]
        t0, t1 = e0 * eighth, min(e1 * eighth, dur)
        sections.append(Section(t0, t1 - t0, letter))
        for s, length, m in material[letter]:
            on, off = (e0 + s) * eighth, min((e0 + s + length) * eighth, t1)
            if m > 0 and off - on > 1e-6:
                notes.append(Note(on, off - on, m))
        for j, c in enumerate(range(e0, e1, 8)):
            deg = progs[letter][j % len(progs[letter])]
            root, quality, numeral, _ = _triad(tonic, mode, deg)
            on, off = c * eighth, min(min(c + 8, e1) * eighth, dur)
            name = NOTE_NAMES[root] + {"maj": "", "min": "m", "dim": "dim"}[quality]
            chords.append(Chord(on, off - on, root, quality, numeral, name))

    n_frames = n_samples // hop
    times = np.arange(n_frames) * hop / sr
    pitch = _pitch_per_frame(notes, times)
    section = np.searchsorted([s.onset for s in sections], times, side="right") - 1
    return ClipLabels(
        source="procedural", sample_rate=sr, hop_length=hop, n_frames=n_frames, seed=seed,
        notes=notes, chords=chords, sections=sections, pitch=pitch, pitch_class=_pitch_class(pitch),
        intensity_db=_intensity_db(rng, dynamics, times / dur), section=section.astype(np.int16),
        bpm=float(bpm), tempo=tempo, tonic=tonic, mode=mode, instrument=instrument,
        has_drums=has_drums, drum_pattern=drum_pattern if has_drums else None, dynamics=dynamics,
        structure=structure,
    )


def compose_clip(seed: int, cfg: MelConfig, seconds: float | None = None) -> ClipLabels:
    """The score of procedural clip ``seed`` (labels only, no audio; about 0.2 ms)."""
    return _compose_score(np.random.default_rng(seed), seed, cfg, _clip_length(cfg, seconds))
