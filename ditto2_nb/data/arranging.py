"""How a piece of the rendered repertoire is performed: the choices drawn per rendition and the
parts they make.

Performance, drawn per rendition from a seeded generator (``default_rng([seed, split, piece
hash, pass])``: a piece's clips never depend on which other pieces were rendered). A piece gives
``renditions_per_piece`` renditions (default 3) of ``clips_per_rendition`` consecutive clips
(default 1: every clip has its own draw), each from its own start bar
    * melody instrument: a procedural timbre uniformly, then one of the GM programs
      :data:`TAG_TIMBRE` maps to it (the draw that made the cached data, kept as is); the clip's
      instrument tag is the program's GM family (:data:`~.theory.GM_FAMILY`), not this timbre;
    * accompaniment where the score has none: ``none``, ``bass`` (root per bar on a bass),
      ``chords`` (sustained triads and bass), ``strum`` (bass on the downbeat, chords on the other
      beats) or ``octave`` (a second instrument doubling the tune an octave below). The harmony is
      chosen per bar (half bar in long bars) from the key's diatonic triads that best fit the
      tune's notes (I, IV, V preferred) -- it is what is played, so it is exact as a label
      (``ClipLabels.chords``). Chorales have their own voices: ``ensemble`` (all on the melody
      instrument) or ``accompanied`` (alto, tenor, bass on a second instrument);
    * transposition (the tune is placed between middle C and D6, inside the band where the melody
      control's chroma listens; lower for the two FluidR3_GM programs that go out of tune higher),
      tempo (tempo class uniformly, then BPM in the class; BPM counts quarter notes, as MIDI
      does), velocity, reverb, optional drums (35 %, the procedural patterns on the
      eighth-note grid, bar-aligned), and the start bar (the tune is looped when it is shorter
      than the window).
    * per clip: the dynamics shape (one of ``DYNAMICS``), applied after rendering as an exact gain
      curve (``intensity_db``, as in the procedural data, after the clip is levelled to the
      procedural "loud" level, -15 dBFS RMS over its active frames; a safety gain keeps the peak
      at 0.9 and is folded into ``intensity_db`` and ``gain_db``).

A rendition is drawn as a :class:`_Plan` (:func:`_plan`) and performed as parts (:class:`_Part`,
note times in seconds; :func:`_perform`), which :mod:`.rendering` plays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .labels import Chord
from .synthesis import _triad_pcs
from .theory import BASS_LOW, DRUM_PATTERNS, DYNAMICS, INSTRUMENTS, NOTE_NAMES, PAD_LOW, TEMPO_CLASSES, _triad

# Melody instruments: the GM programs drawn for a procedural timbre (the timbre nearest to each
# program). Only the draw (and the additive fallback's choice of timbre) uses it: the instrument tag
# of a rendered clip is the program's GM family (theory.GM_FAMILY, which covers every program here).
TAG_TIMBRE: dict[int, str] = {
    # piano, electric piano, harpsichord, vibraphone, marimba; nylon and steel guitar, pizzicato
    # strings, harp, banjo
    **dict.fromkeys((0, 4, 6, 11, 12, 24, 25, 45, 46, 105), "pluck"),
    **dict.fromkeys((16, 19, 21, 22), "organ"),  # drawbar organ, church organ, accordion, harmonica
    **dict.fromkeys((73, 74, 75), "sine"),  # flute, recorder, pan flute
    **dict.fromkeys((71, 80), "square"),  # clarinet, square lead
    # violin, viola, cello, string ensemble, fiddle; trumpet, trombone, soprano and alto sax; oboe,
    # sawtooth lead
    **dict.fromkeys((40, 41, 42, 48, 110, 56, 57, 64, 65, 68, 81), "sawtooth"),
    **dict.fromkeys((60, 79), "triangle"),  # French horn, ocarina
}
CHORD_PROGRAMS = (0, 4, 6, 16, 19, 21, 24, 25, 46, 48)  # piano ... harp, strings
BASS_PROGRAMS = (32, 33, 42, 43, 58, 70)  # acoustic and electric bass, cello, contrabass, tuba, bassoon
OCTAVE_PROGRAMS = (42, 57, 60, 70, 71, 41, 24, 0)  # cello, trombone, horn, bassoon, clarinet, viola...
VOICES_PROGRAMS = (19, 48, 0, 16, 21, 52, 61, 6)  # organ, strings, piano, ..., choir aahs, brass section
ACCOMPANIMENTS = {"none": 0.25, "bass": 0.15, "chords": 0.25, "strum": 0.2, "octave": 0.15}
POLY_ACCOMPANIMENTS = {"ensemble": 0.4, "accompanied": 0.6}
TEMPO_RANGES = {"slow": (64.0, 92.0), "medium": (98.0, 122.0), "fast": (128.0, 160.0)}  # BPM
P_DRUMS = 0.35
MELODY_LOW, MELODY_HIGH = 60, 86  # the transposed tune's range (middle C .. D6)
# Lower tops where FluidR3_GM's samples stop following the key (measured with librosa's yin over
# MIDI 55-96): its harp goes flat above 81, its alto sax above 84.
PROGRAM_HIGH = {46: 81, 65: 84}
PREROLL_S = 0.5  # rendered before each window and cut off, so notes ring into it naturally
_GM_DRUMS = {"kick": 36, "snare": 38, "hat": 42}
_DRUM_VELOCITY = {"kick": 100, "snare": 90, "hat": 66}


def gm_name(program: int) -> str:
    """General MIDI program number -> its name (``40 -> "Violin"``)."""
    import pretty_midi

    return pretty_midi.program_to_instrument_name(int(program))


class _Part(NamedTuple):
    role: str  # "melody" | "voice" | "chords" | "bass" | "octave" | "drums"
    program: int | None  # GM program; None for drums
    volume: int  # CC7
    notes: np.ndarray  # [N, 4] onset s, duration s, MIDI (drum key), velocity


def _draw(rng: np.random.Generator, options: dict[str, float] | Sequence[Any]) -> Any:
    if isinstance(options, dict):
        keys, w = list(options), np.array(list(options.values()), dtype=np.float64)
        return keys[int(rng.choice(len(keys), p=w / w.sum()))]
    return options[int(rng.integers(len(options)))]


def _melody_program(rng: np.random.Generator) -> int:
    timbre = _draw(rng, INSTRUMENTS)
    return int(_draw(rng, sorted(p for p, t in TAG_TIMBRE.items() if t == timbre)))


def _transposition(rng: np.random.Generator, lo: int, hi: int, top: int = MELODY_HIGH) -> int:
    ok = [t for t in range(-12, 13) if lo + t >= MELODY_LOW and hi + t <= top]
    if not ok:  # too wide or too low for the band: the least violation
        cost = {t: max(0, MELODY_LOW - lo - t) + max(0, hi + t - top) for t in range(-12, 25)}
        best = min(cost.values())
        ok = [t for t, c in cost.items() if c == best]
    near = [t for t in ok if abs(t) <= 6]
    return int(_draw(rng, near or ok))


def _spans(measures: Sequence[float], end: float, bar_ql: float) -> list[tuple[float, float]]:
    """Harmony spans: bars, halved when longer than 4 quarter notes."""
    bounds = list(measures) + [end]
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        if b - a > 4.0 + 1e-6 and b - a >= bar_ql - 1e-6:
            out += [(a, (a + b) / 2), ((a + b) / 2, b)]
        elif b > a:
            out.append((a, b))
    return out


_PRIOR = {"major": {0: 1.0, 3: 0.6, 4: 0.6, 5: 0.3, 1: 0.25, 2: 0.2},
          "minor": {0: 1.0, 3: 0.6, 4: 0.5, 5: 0.3, 2: 0.25, 6: 0.25}}


def _harmony(melody: np.ndarray, spans: list[tuple[float, float]], tonic: int,
             mode: str) -> list[tuple[float, float, int]]:
    """(start, end, scale degree) per span: the diatonic triad that best fits the tune's notes."""
    out, prev = [], 0
    for a, b in spans:
        on, du, m = melody[:, 0], melody[:, 1], melody[:, 2].astype(int)
        overlap = np.clip(np.minimum(on + du, b) - np.maximum(on, a), 0, None)
        best, best_score = 0, -1.0
        for deg, prior in _PRIOR[mode].items():
            pcs = _triad(tonic, mode, deg)[3]
            fit = overlap[np.isin(m % 12, pcs)].sum() / max(b - a, 1e-6)
            score = fit + 0.3 * prior + (0.15 if deg == prev else 0.0)
            if score > best_score:
                best, best_score = deg, score
        out.append((a, b, best))
        prev = best
    return out


class _Plan(NamedTuple):
    seed: int
    program: int
    style: str
    programs: dict[str, int]  # role -> program of the other parts
    transpose: int
    bpm: float
    velocity: int
    reverb: int
    drum_pattern: str | None
    start_ql: float
    loops: int
    dynamics: tuple[str, ...]


def _plan(rng: np.random.Generator, score: dict[str, Any], window_s: float, used: set[float],
          n_clips: int) -> _Plan:
    parts = score["parts"]
    poly = len(parts) > 1
    program = _melody_program(rng)
    style = _draw(rng, POLY_ACCOMPANIMENTS if poly else ACCOMPANIMENTS)
    programs: dict[str, int] = {}
    if style in ("bass", "chords", "strum"):
        programs["bass"] = int(_draw(rng, BASS_PROGRAMS))
    if style in ("chords", "strum"):
        programs["chords"] = int(_draw(rng, CHORD_PROGRAMS))
    if style == "octave":
        programs["octave"] = int(_draw(rng, [p for p in OCTAVE_PROGRAMS if p != program]))
    if style == "accompanied":
        programs["voices"] = int(_draw(rng, [p for p in VOICES_PROGRAMS if p != program]))
    mel = np.asarray(parts[score["melody"]], dtype=np.float64)
    transpose = _transposition(rng, int(mel[:, 2].min()), int(mel[:, 2].max()),
                              PROGRAM_HIGH.get(program, MELODY_HIGH))
    tempo = _draw(rng, tuple(TEMPO_CLASSES))
    bpm = round(float(rng.uniform(*TEMPO_RANGES[tempo])), 1)
    velocity = int(rng.integers(64, 116))
    reverb = int(rng.integers(0, 71))
    drums = _draw(rng, tuple(DRUM_PATTERNS)) if rng.random() < P_DRUMS else None
    end, window_ql = float(score["end"]), window_s * bpm / 60.0
    loops = 1 + math.ceil(window_ql / end)
    starts = [m for m in score["measures"] if m + window_ql <= end + 1e-6] or list(score["measures"])
    fresh = [m for m in starts if m not in used] or starts
    start = float(_draw(rng, fresh))
    used.add(start)
    dynamics = tuple(_draw(rng, DYNAMICS) for _ in range(n_clips))
    seed = int(rng.integers(2**62))
    return _Plan(seed, program, style, programs, transpose, bpm, velocity, reverb, drums, start,
                 loops, dynamics)


def _loop(rows: np.ndarray, end: float, loops: int) -> np.ndarray:
    return np.concatenate([rows + np.array([k * end, 0, 0]) for k in range(loops)]) if loops > 1 else rows


def _window(rows: np.ndarray, r0: float, r1: float) -> np.ndarray:
    """Notes [N, 3] (quarter notes) overlapping [r0, r1), clipped to it, times relative to r0."""
    keep = (rows[:, 0] < r1 - 1e-9) & (rows[:, 0] + rows[:, 1] > r0 + 1e-9)
    w = rows[keep].copy()
    on = np.maximum(w[:, 0], r0)
    w[:, 1] = np.minimum(w[:, 0] + w[:, 1], r1) - on
    w[:, 0] = on - r0
    return w


def _perform(score: dict[str, Any], plan: _Plan, window_s: float,
             ) -> tuple[list[_Part], float, np.ndarray, list[Chord]]:
    """The parts of one rendition (times in seconds from the render start), the pre-roll (s), the
    melody notes ``[N, 3]`` and the chords, both in seconds from the window start."""
    rng = np.random.default_rng(plan.seed)
    spq = 60.0 / plan.bpm  # seconds per quarter note
    end, loops = float(score["end"]), plan.loops
    window_ql = window_s / spq
    r0 = max(0.0, plan.start_ql - PREROLL_S / spq)
    r1 = plan.start_ql + window_ql
    t = plan.transpose
    parts = [_loop(np.asarray(p, dtype=np.float64).reshape(-1, 3), end, loops) for p in score["parts"]]
    mel_idx = score["melody"]

    def timed(rows: np.ndarray, vel: int, shift: int = 0) -> np.ndarray:
        w = _window(rows, r0, r1)
        v = np.clip(vel + rng.integers(-6, 7, size=len(w)), 1, 127)
        return np.column_stack([w[:, 0] * spq, w[:, 1] * spq, w[:, 2] + t + shift, v])

    vel = plan.velocity
    out = [_Part("melody", plan.program, 110, timed(parts[mel_idx], vel))]
    for i, rows in enumerate(parts):
        if i == mel_idx:
            continue
        prog = plan.program if plan.style == "ensemble" else plan.programs.get("voices", plan.program)
        out.append(_Part("voice", prog, 90, timed(rows, vel - 8)))
    chords: list[Chord] = []
    if plan.style in ("bass", "chords", "strum"):
        measures = [m + k * end for k in range(loops) for m in score["measures"]]
        tonic0, mode = int(score["tonic"]), str(score["mode"])
        harm = _harmony(parts[mel_idx], _spans(measures, end * loops, float(score["bar_ql"])), tonic0, mode)
        beat = float(score["beat_ql"])
        bass_rows, chord_rows = [], []
        tonic = (tonic0 + t) % 12
        for a, b, deg in harm:
            if b <= r0 or a >= r1:
                continue
            root, quality, numeral, _ = _triad(tonic, mode, deg)
            suffix = {"maj": "", "min": "m", "dim": "dim"}[quality]
            c = Chord(0.0, 0.0, root, quality, numeral, NOTE_NAMES[root] + suffix)
            pcs = _triad_pcs(c)
            bass_note = BASS_LOW + (root - BASS_LOW) % 12
            triad = [PAD_LOW + (pc - PAD_LOW) % 12 for pc in pcs]
            if plan.style == "strum":
                bass_rows.append((a, min(beat, b - a) * 0.95, bass_note))
                k = a + beat
                while k < b - 1e-6:
                    chord_rows += [(k, min(beat, b - k) * 0.9, m) for m in triad]
                    k += beat
            else:
                bass_rows.append((a, (b - a) * 0.97, bass_note))
                if plan.style == "chords":
                    chord_rows += [(a, (b - a) * 0.97, m) for m in triad]
            ca, cb = max(a, plan.start_ql), min(b, r1)
            if cb > ca:
                chords.append(c._replace(onset=(ca - plan.start_ql) * spq, duration=(cb - ca) * spq))
        for role, rows, v, vol in (("bass", bass_rows, vel - 6, 88), ("chords", chord_rows, vel - 14, 72)):
            if rows:
                w = timed(np.array(rows, dtype=np.float64), v, -t)  # already in the transposed key
                out.append(_Part(role, plan.programs[role], vol, w))
    if plan.style == "octave":
        out.append(_Part("octave", plan.programs["octave"], 84, timed(parts[mel_idx], vel - 10, -12)))
    if plan.drum_pattern is not None:
        hits = []
        bar = float(score["bar_ql"])
        bounds = [m + k * end for k in range(loops) for m in score["measures"]] + [end * loops]
        for a, b in zip(bounds, bounds[1:], strict=False):
            nominal = b - bar if b - a < bar - 1e-6 else a  # a pickup bar ends on the grid
            for step in range(int(round(bar / 0.5))):
                x = nominal + 0.5 * step
                if a - 1e-6 <= x < b - 1e-6 and r0 - 1e-6 <= x < r1:
                    for drum, pattern in DRUM_PATTERNS[plan.drum_pattern].items():
                        if pattern[step % 8] == "x":
                            v = int(np.clip(_DRUM_VELOCITY[drum] * vel / 100 + rng.integers(-5, 6), 1, 127))
                            hits.append(((x - r0) * spq, 0.1, _GM_DRUMS[drum], v))
        if hits:
            out.append(_Part("drums", None, 80, np.array(sorted(hits), dtype=np.float64)))
    melody = out[0].notes[:, :3].copy()
    pre = (plan.start_ql - r0) * spq
    melody[:, 0] -= pre
    return out, pre, melody, chords
