"""Music theory of the procedural music: pitch classes, keys, scales, tempo classes, the timbres,
dynamics shapes and forms a clip may have, chord progressions and drum patterns; and the General
MIDI instrument families that tag the rendered repertoire's clips."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

NOTE_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_TONIC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
MODES = ("major", "minor")
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
TEMPO_CLASSES = {"slow": 80.0, "medium": 110.0, "fast": 140.0}  # class -> centre BPM
TEMPO_JITTER = 8.0  # BPM, uniform +-; classes stay inside the tempo_class() thresholds
INSTRUMENTS = ("sine", "square", "sawtooth", "triangle", "organ", "pluck")  # the procedural timbres
# The instrument tag of a rendered repertoire clip: the General MIDI family of its melody program
# (GM_FAMILY). They follow the procedural timbres in the tag vocabulary (TAG_FIELDS["instrument"]),
# so models trained before they existed keep their class indices. "organ" is not repeated: a GM organ
# (drawbar, church), accordion or harmonica is tagged "organ", the word the procedural organ timbre
# already has (both are steady, sustained, reedy/pipe-like tones); "organ" is the one class both
# sources share.
INSTRUMENT_FAMILIES = ("piano", "mallets", "guitar & harp", "strings", "brass", "reeds", "flutes",
                       "synth lead")
GM_FAMILY: dict[int, str] = {  # GM program (0-based) -> family, for every melody program drawn
    **dict.fromkeys((0, 4, 6), "piano"),  # acoustic grand, electric piano 1, harpsichord
    **dict.fromkeys((11, 12), "mallets"),  # vibraphone, marimba
    **dict.fromkeys((24, 25, 45, 46, 105), "guitar & harp"),  # nylon, steel; pizzicato, harp, banjo
    **dict.fromkeys((40, 41, 42, 48, 110), "strings"),  # violin, viola, cello, string ensemble, fiddle
    **dict.fromkeys((56, 57, 60), "brass"),  # trumpet, trombone, French horn
    **dict.fromkeys((64, 65, 68, 71), "reeds"),  # soprano and alto sax, oboe, clarinet
    **dict.fromkeys((73, 74, 75, 79), "flutes"),  # flute, recorder, pan flute, ocarina
    **dict.fromkeys((80, 81), "synth lead"),  # square lead, sawtooth lead
    **dict.fromkeys((16, 19, 21, 22), "organ"),  # drawbar and church organ, accordion, harmonica
}
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
