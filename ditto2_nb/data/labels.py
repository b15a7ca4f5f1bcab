"""What is known about a clip: its notes, chords and sections, and per-frame labels
(:class:`ClipLabels`), one type for every data source.

Per-frame arrays have shape ``[frames]``; frame ``t`` is centred on sample ``t * hop_length``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import numpy as np

from .theory import key_name


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
    pitch : int16 ``[frames]`` melody MIDI pitch per frame, 0 = rest.
    pitch_class : int16 ``[frames]`` ``pitch % 12``, -1 = rest.
    intensity_db : float32 ``[frames]`` the gain in dB applied to the whole mix (procedural only;
        0 dB = the nominal "loud" level).
    section : int16 ``[frames]`` index into ``structure`` of the section sounding at each frame.
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
        """Frame instants in seconds ``[frames]``."""
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
    """Highest note sounding at each instant ``[frames]`` (MIDI, 0 = rest) from a note list."""
    pitch = np.zeros(len(times), dtype=np.int16)
    for nt in notes:
        on = (times >= nt.onset) & (times < nt.onset + nt.duration)
        pitch[on] = np.maximum(pitch[on], nt.midi)
    return pitch


def _pitch_class(pitch: np.ndarray) -> np.ndarray:
    return np.where(pitch > 0, pitch % 12, -1).astype(np.int16)
