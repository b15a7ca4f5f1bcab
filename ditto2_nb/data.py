"""Training data with exact labels: procedural music, a rendered symbolic corpus, your own audio.

Three sources, one label type (:class:`ClipLabels`) and one dataset type (:class:`MelDataset`):

1. **Procedural music** (the default). Clip ``k`` of a dataset with base seed ``s`` is fully
   determined by ``numpy.random.default_rng(s + k)``: tempo, key, a melody on an eighth-note grid,
   one diatonic triad per bar (pad + bass), optional drums, a melody timbre with ADSR envelopes, a
   dynamics curve in dB and a section structure such as ``"ABA"``. Every label is *true*: it is
   the exact score the synthesiser played (see :func:`generate_clips`).
2. **A symbolic corpus** (music21's Bach chorales or Essen folk songs) exported to MIDI and
   rendered with FluidSynth and pretty_midi's bundled General MIDI soundfont when libfluidsynth is
   importable, else with a small additive synthesiser (see :func:`render_corpus`).
3. **A folder of audio files** (wav/flac/ogg/mp3), cut into clips; bad files are skipped and
   counted, never fatal (see :func:`load_audio_folder`).

Shapes
------
* waveforms: ``[N, L]`` float32 numpy arrays at ``MelConfig.sample_rate``, ``L = cfg.n_samples``;
* mels: ``[N, M, T]`` float32 tensors, normalised log-mel from :func:`ditto2_nb.audio.wave_to_mel`;
* per-frame labels: ``[T]`` arrays, frame ``t`` is centred on sample ``t * hop_length``.

Datasets are cached on disk as ``.npz`` files (plus a readable ``.json`` manifest) in
``~/.cache/ditto2_nb`` (override with ``$DITTO2_CACHE`` or ``cache_dir=``). The cache key hashes
the source, the :class:`~ditto2_nb.config.MelConfig`, the size, the seed and
:data:`DATA_VERSION`; writes are atomic and a corrupt file is rebuilt with a warning.
Train and held-out sets are split by seed ranges (:func:`procedural_splits`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import itertools
import json
import math
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import audio
from .core.config import DataConfig, MelConfig, to_dict

__all__ = [
    "AUDIO_EXTENSIONS",
    "DATA_VERSION",
    "DRUM_PATTERNS",
    "DYNAMICS",
    "EVALUATOR_SEED_OFFSET",
    "HELDOUT_SEED_OFFSET",
    "INSTRUMENTS",
    "MELODY_RANGE",
    "MODES",
    "NOTE_NAMES",
    "N_CAPTION_TEMPLATES",
    "PEAK_LIMIT",
    "SCALES",
    "STRUCTURES",
    "TEMPO_CLASSES",
    "Chord",
    "ClipLabels",
    "CorpusClips",
    "DataError",
    "FolderSummary",
    "MelDataset",
    "Note",
    "RenderSummary",
    "Section",
    "cache_root",
    "caption",
    "chorale_dataset",
    "compose_clip",
    "corpus_pieces",
    "fluidsynth_available",
    "folder_dataset",
    "generate_clips",
    "key_name",
    "load_audio_folder",
    "midi_to_hz",
    "procedural_dataset",
    "procedural_splits",
    "random_caption",
    "render_corpus",
    "soundfont_path",
    "synthesize_clip",
    "tempo_class",
    "waves_to_mels",
]

DATA_VERSION = "2"  # bump whenever generated audio or labels change: it is part of every cache key
HELDOUT_SEED_OFFSET = 10_000_000  # held-out clips use seeds seed + OFFSET + k (never train seeds)
EVALUATOR_SEED_OFFSET = 20_000_000  # clips only evaluators train on (never train or held-out seeds)


class DataError(ValueError):
    """Raised when a data source yields nothing usable (empty folder, no readable files...)."""


# ============================================================================ music theory

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_TONIC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
MODES = ("major", "minor")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
TEMPO_CLASSES = {"slow": 80.0, "medium": 110.0, "fast": 140.0}  # class -> centre BPM
TEMPO_JITTER = 8.0  # BPM, uniform +-; classes stay inside the tempo_class() thresholds
INSTRUMENTS = ("sine", "square", "sawtooth", "triangle", "organ", "pluck")
DYNAMICS = ("loud", "soft", "crescendo", "decrescendo", "swell", "sudden")
STRUCTURES = ("AA", "AB", "ABA", "AABB")
MELODY_RANGE = (60, 84)  # MIDI, inclusive: the melody's fundamental is at or above middle C
PAD_LOW, BASS_LOW = 48, 36  # pad triads sit in [48, 60), the bass root in [36, 48)

# Progressions as 0-based scale degrees (0 = I / i). Natural minor: 2 = III, 5 = VI, 6 = VII.
PROGRESSIONS = {
    "major": ((0, 3, 4, 5), (0, 5, 3, 4), (5, 3, 0, 4), (0, 4, 5, 3), (1, 4, 0, 0), (3, 4, 0, 5)),
    "minor": ((0, 3, 4, 0), (0, 5, 2, 6), (0, 3, 6, 2), (0, 5, 3, 4), (3, 6, 0, 0), (5, 6, 0, 0)),
}
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII")

# One bar of eighth-note steps per drum ("x" = hit).
DRUM_PATTERNS = {
    "rock": {"kick": "x...x...", "snare": "..x...x.", "hat": "xxxxxxxx"},
    "four": {"kick": "x.x.x.x.", "snare": "..x...x.", "hat": ".x.x.x.x"},
    "halftime": {"kick": "x......x", "snare": "....x...", "hat": "x.x.x.x."},
    "funk": {"kick": "x..x..x.", "snare": "..x...x.", "hat": "xxxxxxxx"},
}


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    """Equal temperament, A4 = MIDI 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def key_name(tonic: int, mode: str) -> str:
    """``(9, "minor") -> "A minor"``; sharps/flats as in the usual key signatures."""
    names = _MINOR_TONIC_NAMES if mode == "minor" else NOTE_NAMES
    return f"{names[tonic % 12]} {mode}"


def tempo_class(bpm: float) -> str:
    """BPM -> ``"slow"`` (< 95), ``"medium"`` (< 125) or ``"fast"``."""
    return "slow" if bpm < 95 else "medium" if bpm < 125 else "fast"


@lru_cache(maxsize=256)
def _triad(tonic: int, mode: str, degree: int) -> tuple[int, str, str, tuple[int, int, int]]:
    """Diatonic triad on a scale degree -> (root pc, quality, roman numeral, pitch classes)."""
    scale = SCALES[mode]
    pcs = tuple((tonic + scale[(degree + i) % 7]) % 12 for i in (0, 2, 4))
    third, fifth = (pcs[1] - pcs[0]) % 12, (pcs[2] - pcs[0]) % 12
    quality = "maj" if third == 4 else "dim" if fifth == 6 else "min"
    numeral = _ROMAN[degree] if quality == "maj" else _ROMAN[degree].lower()
    return pcs[0], quality, numeral + ("°" if quality == "dim" else ""), pcs


# ============================================================================ labels


class Note(NamedTuple):
    """One melody note: onset and duration in seconds from the clip start, MIDI pitch."""

    onset: float
    duration: float
    midi: int


class Chord(NamedTuple):
    """One chord: onset/duration in seconds, root pitch class, quality, roman numeral, name."""

    onset: float
    duration: float
    root: int
    quality: str  # "maj" | "min" | "dim"
    numeral: str  # e.g. "IV", "vi", "ii°"
    name: str  # e.g. "F", "Am", "Bdim"


class Section(NamedTuple):
    onset: float
    duration: float
    letter: str


_FRAME_FIELDS = ("pitch", "pitch_class", "intensity_db", "section")


@dataclass
class ClipLabels:
    """Everything known about one clip. ``None`` means "unknown for this source".

    Per-frame arrays have shape ``[n_frames]`` (``n_frames = L // hop_length``, as produced by
    :func:`~ditto2_nb.audio.wave_to_mel`); frame ``t`` is the instant ``t * hop / sample_rate``.

    Attributes
    ----------
    pitch : int16 ``[T]`` melody MIDI pitch per frame, 0 = rest.
    pitch_class : int16 ``[T]`` ``pitch % 12``, -1 = rest.
    intensity_db : float32 ``[T]`` the gain in dB applied to the whole mix (procedural only;
        0 dB = the nominal "loud" level).
    section : int16 ``[T]`` index into ``structure`` of the section sounding at each frame.
    """

    source: str  # "procedural", "bach/bwv1.6", a file path...
    sample_rate: int
    hop_length: int
    n_frames: int
    genre: str = "procedural"  # "procedural" | "Bach chorale" | "folk tune" | "recording"
    seed: int | None = None
    start_s: float = 0.0  # where the clip starts in its source piece or file
    notes: list[Note] = field(default_factory=list)
    chords: list[Chord] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    pitch: np.ndarray | None = None
    pitch_class: np.ndarray | None = None
    intensity_db: np.ndarray | None = None
    section: np.ndarray | None = None
    bpm: float | None = None
    tempo: str | None = None  # tempo class: "slow" | "medium" | "fast"
    tonic: int | None = None  # pitch class of the key's tonic
    mode: str | None = None  # "major" | "minor"
    instrument: str | None = None
    has_drums: bool | None = None
    drum_pattern: str | None = None
    dynamics: str | None = None  # one of DYNAMICS
    structure: str | None = None  # one of STRUCTURES
    gain_db: float = 0.0  # safety gain folded into intensity_db (<= 0; keeps the peak <= 0.9)

    @property
    def key(self) -> str | None:
        """Key name such as ``"A minor"``, or ``None`` when unknown."""
        return None if self.tonic is None or self.mode is None else key_name(self.tonic, self.mode)

    @property
    def duration(self) -> float:
        return self.n_frames * self.hop_length / self.sample_rate

    def frame_times(self) -> np.ndarray:
        """Frame instants in seconds ``[T]``."""
        return np.arange(self.n_frames) * self.hop_length / self.sample_rate

    def to_dict(self, frames: bool = True) -> dict[str, Any]:
        """JSON-safe dict; per-frame arrays become lists (or are left out with ``frames=False``)."""
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in _FRAME_FIELDS:
                if frames:
                    d[f.name] = None if v is None else v.tolist()
            elif f.name in ("notes", "chords", "sections"):
                d[f.name] = [list(x) for x in v]
            else:
                d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipLabels:
        d = dict(d)
        d["notes"] = [Note(*x) for x in d.get("notes", [])]
        d["chords"] = [Chord(*x) for x in d.get("chords", [])]
        d["sections"] = [Section(*x) for x in d.get("sections", [])]
        for name in _FRAME_FIELDS:
            if d.get(name) is not None:
                d[name] = np.asarray(d[name], dtype=_frame_dtype(name))
        return cls(**d)


def _frame_dtype(name: str) -> type:
    return np.float32 if name == "intensity_db" else np.int16


def _pitch_per_frame(notes: Sequence[Note], times: np.ndarray) -> np.ndarray:
    """Highest note sounding at each instant ``[T]`` (MIDI, 0 = rest) from a note list."""
    pitch = np.zeros(len(times), dtype=np.int16)
    for nt in notes:
        on = (times >= nt.onset) & (times < nt.onset + nt.duration)
        pitch[on] = np.maximum(pitch[on], nt.midi)
    return pitch


def _pitch_class(pitch: np.ndarray) -> np.ndarray:
    return np.where(pitch > 0, pitch % 12, -1).astype(np.int16)


# ============================================================================ composition


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
    """Dynamics curve in dB over normalised time ``u`` in [0, 1) ``[T]``."""
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


def _compose(rng: np.random.Generator, seed: int, cfg: MelConfig, n_samples: int) -> ClipLabels:
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
    return _compose(np.random.default_rng(seed), seed, cfg, _clip_length(cfg, seconds))


# ============================================================================ synthesis

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
    onset, duration : ``[K]`` seconds, sorted and non-overlapping.
    midi, amp : ``[V, K]`` pitch and linear amplitude of note ``k`` in voice ``v``.

    Each note is a phase ramp (constant frequency: the running sum of the per-sample phase
    increment ``f / sr``) read through a band-limited wavetable, times :func:`_envelope`. The
    wavetable row is picked per note so that no partial exceeds 0.45 ``sr`` (no aliasing).
    """
    out = np.zeros(n, np.float32)
    midi = np.atleast_2d(midi)
    amp = np.broadcast_to(np.atleast_2d(amp), midi.shape).astype(np.float32)
    freq = midi_to_hz(midi)  # [V, K]
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
    triads = np.array([_triad_pcs(c) for c in lab.chords]).reshape(-1, 3).T  # [3, K]
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
    rng = np.random.default_rng(seed)
    n = _clip_length(cfg, seconds)
    lab = _compose(rng, seed, cfg, n)
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
    length = _clip_length(cfg, seconds)
    waves = np.empty((n, length), np.float32)
    labels = []
    for k in range(n):
        waves[k], lab = synthesize_clip(seed + k, cfg, seconds)
        labels.append(lab)
    return waves, labels


# ============================================================================ captions

_TEMPO_WORDS = {"slow": "slow", "medium": "medium-tempo", "fast": "fast"}
_INSTRUMENT_WORDS = {"sine": "sine-wave", "square": "square-wave", "sawtooth": "sawtooth",
                     "triangle": "triangle-wave", "organ": "organ", "pluck": "plucked-string"}
_DYN_ADJ = {"loud": "loud", "soft": "soft", "crescendo": "building", "decrescendo": "fading",
            "swell": "swelling", "sudden": "abruptly rising"}
_DYN_PHRASE = {"loud": "loud throughout", "soft": "soft throughout",
               "crescendo": "getting louder", "decrescendo": "getting quieter",
               "swell": "rising then falling in volume", "sudden": "with a sudden jump in volume"}

_TEMPLATES = (
    "a {tempo}, {dyn} {inst} melody in {key} {drums}",
    "{inst} lead in {key} at {bpm} bpm, {dyn_phrase}, {drums}",
    "{dyn} {tempo} tune in {key}, {inst} sound, {drums}",
    "{key} melody over {progression}: {tempo}, {inst}, {dyn_phrase}",
    "a {tempo} piece in {key} with {form} form, {inst} timbre, {dyn_phrase}, {drums}",
    "{drums_lead} {tempo} {inst} music in {key}, {dyn_phrase}",
)
N_CAPTION_TEMPLATES = len(_TEMPLATES)


def _caption_words(lab: ClipLabels) -> dict[str, str]:
    first = lab.sections[0].onset + lab.sections[0].duration if lab.sections else math.inf
    numerals = [c.numeral for c in lab.chords if c.onset < first - 1e-9] or ["I"]
    return {
        "tempo": _TEMPO_WORDS[lab.tempo], "bpm": f"{lab.bpm:.0f}", "key": lab.key,
        "mode": lab.mode, "inst": _INSTRUMENT_WORDS.get(lab.instrument, lab.instrument),
        "dyn": _DYN_ADJ[lab.dynamics], "dyn_phrase": _DYN_PHRASE[lab.dynamics],
        "drums": "with drums" if lab.has_drums else "without drums",
        "drums_lead": "drums and" if lab.has_drums else "no drums,",
        "progression": ("the chords " if len(numerals) > 1 else "the chord ") + "-".join(numerals),
        "form": lab.structure,
    }


def _generic_caption(lab: ClipLabels, template: int) -> str:
    """Captions for sources without the full procedural label set (corpus, recordings)."""
    tempo = f"{lab.tempo} " if lab.tempo else ""
    what = f"a {tempo}{lab.genre}"
    parts = [what + (f" in {lab.key}" if lab.key else "")]
    if lab.instrument:
        parts.append(f"played on {lab.instrument}")
    if lab.bpm and template % 2:
        parts.append(f"about {lab.bpm:.0f} bpm")
    if lab.genre == "recording":
        parts.append(f"from {Path(lab.source).stem}")
    return ", ".join(parts) if template % 3 else " ".join(parts)


def caption(labels: ClipLabels, template: int = 0) -> str:
    """A text description built only from the labels; ``template`` in ``[0, N_CAPTION_TEMPLATES)``.

    Template 0 reads like "a fast, loud square-wave melody in A minor with drums"; the others
    are paraphrases (for text-audio training pick one per example with :func:`random_caption`).
    """
    if not 0 <= template < N_CAPTION_TEMPLATES:
        raise ValueError(f"template must be in [0, {N_CAPTION_TEMPLATES}), got {template}")
    if labels.genre != "procedural":
        return _generic_caption(labels, template)
    return _TEMPLATES[template].format(**_caption_words(labels))


def random_caption(labels: ClipLabels, rng: np.random.Generator) -> str:
    """A caption with a template drawn from ``rng``."""
    return caption(labels, int(rng.integers(N_CAPTION_TEMPLATES)))


# ============================================================================ cache


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache folder: ``cache_dir``, else ``$DITTO2_CACHE``, else ``~/.cache/ditto2_nb``."""
    root = cache_dir or os.environ.get("DITTO2_CACHE") or Path.home() / ".cache" / "ditto2_nb"
    return Path(root).expanduser()


def _hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write through a temporary file in the same folder, then ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; caches are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _save_cache(path: Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """Arrays + manifest in one uncompressed ``.npz`` (zip CRCs catch corruption) + a ``.json``."""
    _atomic_write(path, lambda f: np.savez(f, manifest=_json_bytes(manifest), **arrays))
    text = json.dumps(manifest, indent=1, sort_keys=True).encode()
    _atomic_write(path.with_suffix(".json"), lambda f: f.write(text))


def _load_cache(path: Path, key: dict[str, Any],
                decode: Callable[[dict[str, np.ndarray], dict[str, Any]], Any]) -> Any:
    """``decode(arrays, manifest)`` of a cache file, or ``None`` when it is missing; when it is
    corrupt, stale or fails to decode: a warning and ``None`` (the caller rebuilds it)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            manifest = json.loads(z["manifest"].tobytes())
            if manifest.get("key") != json.loads(json.dumps(key)):
                raise ValueError("manifest key does not match the requested data")
            arrays = {name: z[name] for name in z.files if name != "manifest"}
        return decode(arrays, manifest)
    except Exception as e:  # noqa: BLE001 - any failure means "rebuild"
        warnings.warn(f"cache file {path} is unreadable or stale ({type(e).__name__}: {e}); "
                      "rebuilding it", stacklevel=3)
        return None


def _summary_to_json(summary: Any) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {"type": type(summary).__name__,
            **{f.name: getattr(summary, f.name) for f in fields(summary)}}


def _summary_from_json(d: dict[str, Any] | None) -> Any:
    if d is None:
        return None
    d = dict(d)
    cls = {"RenderSummary": RenderSummary, "FolderSummary": FolderSummary}[d.pop("type")]
    if cls is FolderSummary:
        d["skipped"] = {k: tuple(v) for k, v in d["skipped"].items()}
    return cls(**d)


def _labels_to_arrays(labels: Sequence[ClipLabels]) -> dict[str, np.ndarray]:
    """Per-frame fields present in every clip are stacked ``[N, T]``; the rest goes to JSON."""
    out: dict[str, np.ndarray] = {}
    stacked = [f for f in _FRAME_FIELDS if labels and all(
        getattr(x, f) is not None and len(getattr(x, f)) == labels[0].n_frames for x in labels)]
    for f in stacked:
        out["frame_" + f] = np.stack([getattr(x, f) for x in labels]).astype(_frame_dtype(f))
    dicts = []
    for x in labels:
        d = x.to_dict()
        for f in stacked:
            d.pop(f)
        dicts.append(d)
    out["labels_json"] = _json_bytes(dicts)
    return out


def _labels_from_arrays(arrays: dict[str, np.ndarray]) -> list[ClipLabels]:
    dicts = json.loads(arrays["labels_json"].tobytes())
    for name, value in arrays.items():
        if name.startswith("frame_"):
            for d, row in zip(dicts, value, strict=True):
                d[name[len("frame_"):]] = row
    return [ClipLabels.from_dict(d) for d in dicts]


# ============================================================================ mels and datasets


def waves_to_mels(waves: np.ndarray | torch.Tensor, cfg: MelConfig,
                  batch_size: int = 64) -> torch.Tensor:
    """Waveforms ``[N, L]`` -> normalised log-mels ``[N, M, L // hop]`` float32 (CPU, no grad)."""
    w = torch.as_tensor(waves)
    out = []
    with torch.inference_mode():
        for i in range(0, len(w), batch_size):
            out.append(audio.wave_to_mel(w[i: i + batch_size], cfg).float().cpu())
    if not out:
        return torch.zeros(0, cfg.n_mels, w.shape[-1] // cfg.hop_length if w.ndim == 2 else 0)
    return torch.cat(out).clone()  # clone: leave inference mode (usable in autograd later)


class MelDataset(torch.utils.data.Dataset):
    """Mels ``[N, M, T]`` with their labels and captions.

    ``dataset[i]`` is ``{"mel": [M, T], "caption": str, "index": i}`` (the default collate turns a
    batch into ``mel [B, M, T]``, a list of captions and an index tensor). ``frame_labels(name)``
    gives per-frame targets ``[N, T]`` for control training.
    """

    def __init__(self, mels: torch.Tensor, labels: Sequence[ClipLabels], cfg: MelConfig,
                 name: str = "", summary: Any = None, cache_path: Path | None = None,
                 from_cache: bool = False):
        if mels.ndim != 3 or len(mels) != len(labels):
            raise ValueError(f"mels {tuple(mels.shape)} must be [N, M, T] with one label per clip "
                             f"({len(labels)} labels)")
        self.mels, self.labels, self.cfg, self.name = mels, list(labels), cfg, name
        self.summary, self.cache_path, self.from_cache = summary, cache_path, from_cache
        self._captions: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"mel": self.mels[i], "caption": self.captions[i], "index": i}

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.mels.shape))
        return f"MelDataset({self.name!r}, mels {shape}{', cached' if self.from_cache else ''})"

    @property
    def captions(self) -> list[str]:
        """Template-0 captions, one per clip."""
        if self._captions is None:
            self._captions = [caption(x) for x in self.labels]
        return self._captions

    def random_captions(self, rng: np.random.Generator) -> list[str]:
        """One caption per clip, each with a template drawn from ``rng``."""
        return [random_caption(x, rng) for x in self.labels]

    def frame_labels(self, name: str) -> torch.Tensor:
        """Per-frame label ``name`` (``pitch``, ``pitch_class``, ``intensity_db``, ``section``) as
        float32 ``[N, T]``."""
        if name not in _FRAME_FIELDS:
            raise ValueError(f"unknown per-frame label {name!r}; choose one of {_FRAME_FIELDS}")
        rows = [getattr(x, name) for x in self.labels]
        if any(r is None for r in rows):
            raise ValueError(f"label {name!r} is not known for every clip of {self.name!r}")
        return torch.from_numpy(np.stack(rows).astype(np.float32))

    def subset(self, indices: Sequence[int]) -> MelDataset:
        idx = list(indices)
        return MelDataset(self.mels[idx], [self.labels[i] for i in idx], self.cfg,
                          f"{self.name}[subset]")

    def __add__(self, other: MelDataset) -> MelDataset:
        if self.cfg != other.cfg:
            raise ValueError("cannot join datasets built with different MelConfigs")
        return MelDataset(torch.cat([self.mels, other.mels]), self.labels + other.labels,
                          self.cfg, f"{self.name}+{other.name}")


def _cached_dataset(kind: str, key: dict[str, Any], cfg: MelConfig,
                    build: Callable[[], tuple[torch.Tensor, list[ClipLabels], Any]],
                    cache_dir: str | os.PathLike | None, use_cache: bool) -> MelDataset:
    """Load ``kind`` from the mel cache or build it (and store it)."""
    path = cache_root(cache_dir) / f"{kind}-{_hash(key)}.npz"

    def decode(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> MelDataset:
        mels = torch.from_numpy(arrays.pop("mels"))
        if list(mels.shape) != manifest["shape"] or mels.shape[1] != cfg.n_mels:
            raise ValueError(f"mels have shape {tuple(mels.shape)}, manifest {manifest['shape']}")
        return MelDataset(mels, _labels_from_arrays(arrays), cfg, kind,
                          _summary_from_json(manifest["summary"]), path, from_cache=True)

    hit = _load_cache(path, key, decode) if use_cache else None
    if hit is not None:
        return hit
    mels, labels, summary = build()
    manifest = {"key": key, "kind": kind, "n": len(labels), "shape": list(mels.shape),
                "summary": _summary_to_json(summary)}
    if use_cache:
        _save_cache(path, {"mels": mels.numpy(), **_labels_to_arrays(labels)}, manifest)
    return MelDataset(mels, labels, cfg, kind, summary, path if use_cache else None)


def procedural_dataset(cfg: MelConfig, n: int, seed: int = 0,
                       cache_dir: str | os.PathLike | None = None, *, use_cache: bool = True,
                       chunk: int = 64) -> MelDataset:
    """Procedural clips ``seed .. seed + n - 1`` as mels ``[n, M, cfg.frames]`` (cached).

    Waves are generated and converted ``chunk`` clips at a time, so memory stays small.
    """
    key = {"source": "procedural", "mel": to_dict(cfg), "n": n, "seed": seed,
           "version": DATA_VERSION}

    def build() -> tuple[torch.Tensor, list[ClipLabels], None]:
        mels, labels = [], []
        for start in range(0, n, chunk):
            waves, labs = generate_clips(min(chunk, n - start), seed + start, cfg)
            mels.append(waves_to_mels(waves, cfg))
            labels += labs
        empty = torch.zeros(0, cfg.n_mels, cfg.frames)
        return (torch.cat(mels) if mels else empty), labels, None

    return _cached_dataset("procedural", key, cfg, build, cache_dir, use_cache)


def procedural_splits(mel: MelConfig, data: DataConfig,
                      cache_dir: str | os.PathLike | None = None) -> tuple[MelDataset, MelDataset]:
    """(train, held-out) procedural datasets from disjoint seed ranges.

    Train uses seeds ``[data.seed, data.seed + n_train)``, held-out
    ``[data.seed + HELDOUT_SEED_OFFSET, ... + n_heldout)``.
    """
    if data.n_train > HELDOUT_SEED_OFFSET:
        raise ValueError(f"n_train must be at most {HELDOUT_SEED_OFFSET} to keep seeds disjoint")
    train = procedural_dataset(mel, data.n_train, data.seed, cache_dir)
    held = procedural_dataset(mel, data.n_heldout, data.seed + HELDOUT_SEED_OFFSET, cache_dir)
    return train, held


# ============================================================================ symbolic corpus

_COLLECTIONS = {"bach": "Bach chorale", "folk": "folk tune"}
_RENDERERS = ("auto", "fluidsynth", "additive")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def soundfont_path() -> Path | None:
    """pretty_midi's bundled General MIDI soundfont (TimGM6mb.sf2), if present."""
    try:
        import pretty_midi
    except ImportError:
        return None
    hits = sorted(Path(pretty_midi.__file__).parent.glob("*.sf2"))
    return hits[0] if hits else None


def fluidsynth_available() -> bool:
    """True when pyfluidsynth imports (libfluidsynth is installed) and a soundfont is found."""
    try:
        import fluidsynth  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, OSError: both mean "not available"
        return False
    return soundfont_path() is not None


def _resolve_renderer(renderer: str) -> str:
    if renderer not in _RENDERERS:
        raise ValueError(f"renderer must be one of {_RENDERERS}, got {renderer!r}")
    if renderer == "auto":
        return "fluidsynth" if fluidsynth_available() else "additive"
    if renderer == "fluidsynth" and not fluidsynth_available():
        raise DataError("renderer='fluidsynth' needs libfluidsynth (apt install fluidsynth) and "
                        "pretty_midi's soundfont; use renderer='additive' or 'auto'")
    return renderer


def corpus_pieces(collection: str = "bach", limit: int | None = None) -> list[str]:
    """Identifiers of pieces in music21's built-in corpus, in a fixed order.

    ``"bach"`` -> ``"bach/bwv1.6"``...; ``"folk"`` -> Essen folk songs ``"essenFolksong/<file>#<n>"``
    (one per tune of the multi-tune ABC files).
    """
    from music21 import corpus

    if collection not in _COLLECTIONS:
        raise ValueError(f"collection must be one of {sorted(_COLLECTIONS)}, got {collection!r}")
    if collection == "bach":
        paths = sorted((p for p in corpus.getComposer("bach")
                        if p.suffix in (".mxl", ".xml", ".musicxml", ".krn")), key=lambda p: p.name)
        ids = [f"bach/{p.stem}" for p in paths]
    else:
        ids = []
        for p in sorted((p for p in corpus.getPaths() if "essenFolksong" in p.parts),
                        key=lambda p: p.name):
            numbers = re.findall(r"^X:\s*(\d+)", p.read_text(errors="replace"), re.MULTILINE)
            ids += [f"essenFolksong/{p.stem}#{n}" for n in numbers]
            if limit is not None and len(ids) >= limit:
                break
    return ids[:limit] if limit is not None else ids


def _parse_piece(piece: str) -> Any:
    from music21 import corpus

    name, _, number = piece.partition("#")
    score = corpus.parse(name, number=int(number)) if number else corpus.parse(name)
    if not hasattr(score, "parts"):
        raise DataError(f"{piece} did not parse to a single score ({type(score).__name__})")
    return score


def _piece_to_midi(piece: str) -> tuple[Any, int | None, str | None]:
    """music21 parse -> MIDI bytes -> pretty_midi; also the analysed key (tonic pc, mode)."""
    import pretty_midi
    from music21 import midi as m21midi

    score = _parse_piece(piece)
    try:
        k = score.analyze("key")
        tonic, mode = int(k.tonic.pitchClass), str(k.mode)
        if mode not in MODES:
            tonic, mode = None, None
    except Exception:  # noqa: BLE001 - the key is optional
        tonic, mode = None, None
    data = m21midi.translate.streamToMidiFile(score).writestr()
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    if not any(i.notes for i in pm.instruments if not i.is_drum):
        raise DataError(f"{piece} has no notes after MIDI export")
    return pm, tonic, mode


def _melody_part(pm: Any) -> Any:
    """The soprano part if it is named so, else the part with the highest mean pitch."""
    parts = [i for i in pm.instruments if i.notes and not i.is_drum]
    named = [i for i in parts if "soprano" in i.name.lower()]
    return named[0] if named else max(parts, key=lambda i: np.mean([x.pitch for x in i.notes]))


def _additive_render(pm: Any, sr: int) -> np.ndarray:
    """Small organ-like additive synthesiser over all notes ``[L]`` (4 harmonics, ADSR)."""
    out = np.zeros(math.ceil(pm.get_end_time() * sr) + 1, np.float64)
    harmonics = np.array([1.0, 0.5, 0.25, 0.12])
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        for x in inst.notes:
            s0, s1 = round(x.start * sr), round(x.end * sr)
            if s1 <= s0:
                continue
            t = np.arange(s1 - s0) / sr
            f = float(midi_to_hz(x.pitch))
            h = harmonics[: max(1, min(len(harmonics), int(0.45 * sr / f)))]
            tone = np.sin(2 * np.pi * f * np.outer(np.arange(1, len(h) + 1), t)).T @ h
            rel = np.clip((t[-1] - t) / 0.05, 0.0, 1.0)
            env = np.minimum(t / 0.01, 1.0) * (0.6 + 0.4 * np.exp(-t / 0.2)) * rel
            out[s0:s1] += (x.velocity / 127.0) * tone * env
    return out.astype(np.float32)


def _render_pm(pm: Any, renderer: str, sr: int) -> tuple[np.ndarray, str]:
    """Render pretty_midi -> (wave peak-normalised to 0.8, instrument description)."""
    import pretty_midi

    if renderer == "fluidsynth":
        wave = pm.fluidsynth(fs=sr, sf2_path=str(soundfont_path())).astype(np.float32)
        program = _melody_part(pm).program
        desc = pretty_midi.program_to_instrument_name(program).lower()
    else:
        wave, desc = _additive_render(pm, sr), "an additive organ"
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak <= 0 or not np.isfinite(peak):
        raise DataError("rendered audio is silent or not finite")
    return wave * (0.8 / peak), desc


@dataclass
class RenderSummary:
    """What happened while rendering a corpus."""

    collection: str
    renderer: str
    n_pieces: int = 0
    n_rendered: int = 0
    n_clips: int = 0
    n_silent_clips: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # piece -> reason

    def __str__(self) -> str:
        head = (f"{self.collection} via {self.renderer}: rendered {self.n_rendered} of "
                f"{self.n_pieces} pieces -> {self.n_clips} clips ({self.n_silent_clips} silent "
                f"clips dropped, {len(self.failed)} pieces failed)")
        lines = [head]
        lines += [f"  {piece}: {why}" for piece, why in self.failed.items()]
        return "\n".join(lines)


class CorpusClips(NamedTuple):
    waves: np.ndarray  # [N, L] float32
    labels: list[ClipLabels]
    summary: RenderSummary


def _cut_piece(wave: np.ndarray, pm: Any, piece: str, genre: str, desc: str, tonic: int | None,
               mode: str | None, cfg: MelConfig, silence_db: float,
               summary: RenderSummary) -> tuple[list[np.ndarray], list[ClipLabels]]:
    """Non-overlapping clips of ``cfg.n_samples`` with top-voice labels."""
    sr, hop, n = cfg.sample_rate, cfg.hop_length, cfg.n_samples
    tempi = pm.get_tempo_changes()[1]
    bpm = round(float(tempi[0]), 1) if len(tempi) else 120.0
    melody = [Note(float(x.start), float(x.end - x.start), int(x.pitch))
              for x in sorted(_melody_part(pm).notes, key=lambda x: x.start)]
    clips, labels = [], []
    for start in range(0, len(wave) - n + 1, n):
        clip = wave[start: start + n]
        if audio.rms_db(torch.from_numpy(clip)) < silence_db:
            summary.n_silent_clips += 1
            continue
        t0, t1 = start / sr, (start + n) / sr
        notes = [Note(max(x.onset, t0) - t0, min(x.onset + x.duration, t1) - max(x.onset, t0),
                      x.midi) for x in melody if x.onset < t1 and x.onset + x.duration > t0]
        times = np.arange(n // hop) * hop / sr
        pitch = _pitch_per_frame(notes, times)
        clips.append(clip)
        labels.append(ClipLabels(
            source=piece, sample_rate=sr, hop_length=hop, n_frames=n // hop, genre=genre,
            start_s=t0, notes=notes, pitch=pitch, pitch_class=_pitch_class(pitch), bpm=bpm,
            tempo=tempo_class(bpm), tonic=tonic, mode=mode, instrument=desc, has_drums=False))
    return clips, labels


def render_corpus(cfg: MelConfig, collection: str = "bach", limit: int | None = 8, *,
                  renderer: str = "auto", cache_dir: str | os.PathLike | None = None,
                  use_cache: bool = True, silence_db: float = -60.0) -> CorpusClips:
    """Render ``limit`` pieces of a music21 corpus into clips with top-voice labels (cached).

    Pieces that fail to parse, export or render are skipped and listed in the summary. Parsing
    takes ~0.2 s per chorale, so keep ``limit`` small in tests and CI.

    Returns
    -------
    CorpusClips(waves float32 ``[N, cfg.n_samples]``, labels, summary).
    """
    renderer = _resolve_renderer(renderer)
    pieces = corpus_pieces(collection, limit)
    key = {"source": f"corpus/{collection}", "pieces": pieces, "renderer": renderer,
           "mel": to_dict(cfg), "silence_db": silence_db, "version": DATA_VERSION,
           "music21": _version("music21")}
    path = cache_root(cache_dir) / f"corpus-{_hash(key)}.npz"

    def decode(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> CorpusClips:
        waves = arrays.pop("waves_pcm16").astype(np.float32) / 32767.0
        labels = _labels_from_arrays(arrays)
        if len(waves) != len(labels) or waves.shape[1:] != (cfg.n_samples,):
            raise ValueError(f"waves {waves.shape} do not match {len(labels)} labels")
        return CorpusClips(waves, labels, _summary_from_json(manifest["summary"]))

    hit = _load_cache(path, key, decode) if use_cache else None
    if hit is not None:
        return hit

    summary = RenderSummary(collection, renderer, n_pieces=len(pieces))
    clips, labels = [], []
    for piece in pieces:
        try:
            pm, tonic, mode = _piece_to_midi(piece)
            wave, desc = _render_pm(pm, renderer, cfg.sample_rate)
        except Exception as e:  # noqa: BLE001 - malformed scores are skipped, never fatal
            summary.failed[piece] = f"{type(e).__name__}: {e}"[:200]
            continue
        summary.n_rendered += 1
        c, lab = _cut_piece(wave, pm, piece, _COLLECTIONS[collection], desc, tonic, mode, cfg,
                            silence_db, summary)
        clips += c
        labels += lab
    summary.n_clips = len(clips)
    waves = np.stack(clips) if clips else np.zeros((0, cfg.n_samples), np.float32)
    if use_cache:
        pcm = np.round(np.clip(waves, -1, 1) * 32767).astype(np.int16)
        manifest = {"key": key, "n": len(labels), "summary": _summary_to_json(summary)}
        _save_cache(path, {"waves_pcm16": pcm, **_labels_to_arrays(labels)}, manifest)
    return CorpusClips(waves, labels, summary)


def chorale_dataset(cfg: MelConfig, limit: int | None = 8, *, collection: str = "bach",
                    renderer: str = "auto", max_clips: int | None = None,
                    cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True) -> MelDataset:
    """Mels of rendered corpus clips (see :func:`render_corpus`), at most ``max_clips``."""
    renderer = _resolve_renderer(renderer)
    key = {"source": f"corpus/{collection}", "limit": limit, "renderer": renderer,
           "max_clips": max_clips, "mel": to_dict(cfg), "version": DATA_VERSION,
           "music21": _version("music21")}

    def build() -> tuple[torch.Tensor, list[ClipLabels], RenderSummary]:
        waves, labels, summary = render_corpus(cfg, collection, limit, renderer=renderer,
                                               cache_dir=cache_dir, use_cache=use_cache)
        if not labels:
            raise DataError(f"no clips rendered from the {collection} corpus:\n{summary}")
        waves, labels = waves[:max_clips], labels[:max_clips]
        return waves_to_mels(waves, cfg), labels, summary

    return _cached_dataset(f"corpus-{collection}", key, cfg, build, cache_dir, use_cache)


# ============================================================================ user audio folder

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class FolderSummary:
    """Per-file outcome of :func:`load_audio_folder`."""

    folder: str
    n_files: int = 0
    n_loaded: int = 0
    n_clips: int = 0
    n_silent_clips: int = 0  # silent clips inside otherwise usable files (dropped)
    skipped: dict[str, tuple[str, str]] = field(default_factory=dict)  # file -> (reason, detail)

    @property
    def counts(self) -> dict[str, int]:
        """Skipped files per reason: ``unreadable``, ``silent``, ``too short``."""
        return dict(Counter(reason for reason, _ in self.skipped.values()))

    def __str__(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items())) or "none"
        head = (f"{self.folder}: loaded {self.n_loaded} of {self.n_files} audio files -> "
                f"{self.n_clips} clips ({self.n_silent_clips} silent clips dropped); "
                f"skipped files: {counts}")
        lines = [head]
        lines += [f"  {name}: {reason} ({detail})" for name, (reason, detail)
                  in self.skipped.items()]
        return "\n".join(lines)


def _audio_files(folder: Path, recursive: bool) -> list[Path]:
    if not folder.exists():
        raise FileNotFoundError(f"audio folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder; pass the folder that holds your "
                                 "audio files")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in folder.glob(pattern)
                   if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {folder}")
    return files


def load_audio_folder(folder: str | os.PathLike, cfg: MelConfig, *, recursive: bool = True,
                      silence_db: float = -60.0, min_seconds: float | None = None,
                      max_clips_per_file: int | None = None
                      ) -> tuple[np.ndarray, list[ClipLabels], FolderSummary]:
    """Cut every audio file of a folder into mono clips of ``cfg.n_samples`` samples.

    Files are read with :func:`ditto2_nb.audio.load_audio` (channels averaged, resampled to
    ``cfg.sample_rate``). Unreadable files, silent files (RMS below ``silence_db`` dBFS) and files
    shorter than ``min_seconds`` (default: one clip) are skipped and counted in the summary; a
    file between ``min_seconds`` and one clip long is zero-padded. Clips do not overlap; the
    leftover tail of each file and silent clips are dropped.

    Returns
    -------
    waves : float32 ``[N, cfg.n_samples]``; labels : ``N`` ClipLabels (source file, start time);
    summary : :class:`FolderSummary`.

    Raises
    ------
    FileNotFoundError / NotADirectoryError for a bad path, :class:`DataError` when the folder holds
    no audio files or none of them is usable.
    """
    folder = Path(folder).expanduser()
    files = _audio_files(folder, recursive)
    n, sr, hop = cfg.n_samples, cfg.sample_rate, cfg.hop_length
    min_len = n if min_seconds is None else max(1, round(min_seconds * sr))
    summary = FolderSummary(str(folder), n_files=len(files))
    clips, labels = [], []
    for path in files:
        name = str(path.relative_to(folder))
        try:
            wave = audio.load_audio(path, sr).numpy()
        except Exception as e:  # noqa: BLE001 - AudioError, decoder errors...: skip the file
            detail = str(e).replace(str(path), path.name)  # the key already names the file
            summary.skipped[name] = ("unreadable", f"{type(e).__name__}: {detail}"[:160])
            continue
        level = audio.rms_db(torch.from_numpy(wave))
        if len(wave) < min_len:
            summary.skipped[name] = ("too short", f"{len(wave) / sr:.2f} s < {min_len / sr:.2f} s")
            continue
        if level < silence_db:
            summary.skipped[name] = ("silent", f"RMS {level:.1f} dBFS < {silence_db:.0f}")
            continue
        if len(wave) < n:
            wave = np.pad(wave, (0, n - len(wave)))
        starts = range(0, len(wave) - n + 1, n)
        kept = 0
        for start in starts:
            if max_clips_per_file is not None and kept >= max_clips_per_file:
                break
            clip = wave[start: start + n]
            if audio.rms_db(torch.from_numpy(clip)) < silence_db:
                summary.n_silent_clips += 1
                continue
            clips.append(clip.astype(np.float32))
            labels.append(ClipLabels(source=str(path), sample_rate=sr, hop_length=hop,
                                     n_frames=n // hop, genre="recording", start_s=start / sr))
            kept += 1
        summary.n_loaded += 1
    summary.n_clips = len(clips)
    if not clips:
        raise DataError(f"no usable clips in {folder}:\n{summary}")
    return np.stack(clips), labels, summary


def folder_dataset(folder: str | os.PathLike, cfg: MelConfig,
                   cache_dir: str | os.PathLike | None = None, *, use_cache: bool = True,
                   **kwargs: Any) -> MelDataset:
    """Mels of :func:`load_audio_folder` clips; the cache key includes each file's size and
    modification time, so editing the folder rebuilds it. ``kwargs`` go to the loader."""
    folder = Path(folder).expanduser()
    files = _audio_files(folder, kwargs.get("recursive", True))
    stamp = [[str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    key = {"source": f"folder/{folder.resolve()}", "files": stamp, "options": kwargs,
           "mel": to_dict(cfg), "version": DATA_VERSION}

    def build() -> tuple[torch.Tensor, list[ClipLabels], FolderSummary]:
        waves, labels, summary = load_audio_folder(folder, cfg, **kwargs)
        return waves_to_mels(waves, cfg), labels, summary

    return _cached_dataset("folder", key, cfg, build, cache_dir, use_cache)
