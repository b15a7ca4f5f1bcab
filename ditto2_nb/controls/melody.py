"""Melody: a 12-bin chroma of the mel (matched pitch-class templates, softmax per frame) against
a pitch class per frame (cross-entropy on voiced frames); evaluated with librosa's chroma.

A melody target read from audio (:func:`pitch_classes_from_mel`) is a rest wherever a frame is quiet,
unpitched or sounding outside the chroma band (:func:`_voiced`, one rule, also used by
:func:`chroma_agreement`), so noise, drums and silence do not become notes.

:func:`chroma` and :func:`chroma_agreement` are also the plain features of the distillation
benchmark's trajectory consistency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, NamedTuple

import numpy as np
import torch

from ..audio.analysis import MIDDLE_C_HZ, librosa_chroma, wave_np
from ..audio.mel import check_mel, mel_filterbank, norm_to_power
from ..core.config import MelConfig
from ..data.labels import ClipLabels, Note, _pitch_per_frame
from .base import Control, _batch, _check_frames


def mel_centre_hz(cfg: MelConfig) -> torch.Tensor:
    """Centre frequency of each mel bin (Hz), ``[n_mels]``."""
    fb = mel_filterbank(cfg)  # [n_freq, n_mels]
    freqs = torch.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    return (fb * freqs[:, None]).sum(0) / fb.sum(0).clamp_min(1e-8)


def _tone_mel_response(hz: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power of one Hann-windowed frame of a unit sine at each frequency: ``[P] -> [P, n_mels]``."""
    n = torch.arange(cfg.n_fft, dtype=torch.float64)
    win = torch.hann_window(cfg.n_fft, dtype=torch.float64)
    frames = win * torch.cos(2 * torch.pi * hz[:, None].double() * n / cfg.sample_rate)  # [P, n_fft]
    return torch.fft.rfft(frames).abs().pow(2) @ mel_filterbank(cfg).double()


# Voicing: the one rule that decides which frames of a reference carry a note (see _voiced).
MIN_PEAKINESS = 0.2
"""Smallest share of a frame's chroma energy in its strongest pitch class for the frame to be pitched.

Noise spreads its energy over all 12 classes (an even spread is 1/12 = 0.083); a note puts most of
it into its own class and the neighbouring ones its mel bins overlap. Measured with the ``laptop``
mel settings (``ci`` differs only in clip length): white and pink noise, 8192 frames each, reach
0.185 and 0.194 at their 99.9th percentile (max 0.205 and 0.208); a steady tone of any procedural
timbre (sine, square, sawtooth, triangle, organ, pluck) at any MIDI pitch 60-84 never falls below
0.225 (square wave, MIDI 63), pure sines 60-96 not below 0.244. 0.2 sits between the two.
"""
GUARD_SEMITONES = 5
"""Pitches on either side of the chroma band (MIDI 55-59 below middle C, 97-101 above C7) that
compete for a frame's strongest pitch: a frame whose strongest pitch is one of them is a rest.

With 64 mels a bin near middle C spans ~2.4 semitones, so the C4 template also answers a tone
below the band: B3 at 0.94 of its answer to C4, Bb3 0.56, A3 0.20, Ab3 0.068, G3 0.033 and F#3
0.012 (the C7 template: C#7 0.29, D7 0.006). Five semitones cover every pitch that leaks more than
3%. Without the guard, what sounds just outside the band is heard as an edge class, and pitched:
with the peakiness rule alone, 17-21% of the frames of the procedural drum patterns played alone
were voiced, nearly all as C (kick and snare), and a Bb-minor pad (Bb3, 233 Hz) under a rest of
procedural clip 3 gave 10 frames of C; with a guard below the band only, the hi-hat's rising
spectrum still gave 1-5% of B-flat; with both, no drum frame is voiced.
"""


def _pitches(f_low: float, f_high: float) -> tuple[int, int]:
    first = math.ceil(69 + 12 * math.log2(f_low / 440.0) - 0.01)  # MIDI pitches in the band
    last = math.floor(69 + 12 * math.log2(f_high / 440.0) + 0.01)
    if last < first:
        raise ValueError(f"no pitch between f_low={f_low} Hz and f_high={f_high} Hz")
    return first, last


@lru_cache(maxsize=16)
def _pitch_templates(cfg: MelConfig, first: int, last: int, width_semitones: float) -> torch.Tensor:
    """Unit-norm mel response of a sine at each MIDI pitch ``first..last``, ``[P, n_mels]`` float64,
    averaged over detunings of +-0.5 semitone with a Gaussian of ``width_semitones``."""
    detune = torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)  # semitones
    weight = torch.exp(-0.5 * (detune / width_semitones) ** 2)
    pitch = torch.arange(first, last + 1, dtype=torch.float64)
    hz = 440.0 * 2.0 ** ((pitch[:, None] + detune[None] - 69.0) / 12.0)  # [P, detunings]
    resp = _tone_mel_response(hz.reshape(-1), cfg).reshape(len(pitch), len(detune), -1)
    template = torch.einsum("d,pdm->pm", weight, resp)  # [P, n_mels]
    return template / template.norm(dim=1, keepdim=True).clamp_min(1e-30)


@lru_cache(maxsize=16)
def _chroma_matrix(cfg: MelConfig, f_low: float, f_high: float, width_semitones: float) -> torch.Tensor:
    first, last = _pitches(f_low, f_high)
    template = _pitch_templates(cfg, first, last, width_semitones)
    out = torch.zeros(12, cfg.n_mels, dtype=torch.float64)
    out.index_add_(0, torch.arange(first, last + 1) % 12, template)
    return (out / out.norm(dim=1, keepdim=True).clamp_min(1e-30)).float()


def chroma_matrix(cfg: MelConfig, f_low: float = MIDDLE_C_HZ, f_high: float = 2100.0,
                  width_semitones: float = 0.75) -> torch.Tensor:
    """Pitch-class templates over the mel bins ``[12, n_mels]`` for pitches between ``f_low`` and ``f_high``.

    Row ``c`` sums, over every pitch of class ``c`` in the band (middle C to C7 by default: the
    high-pass at middle C), the unit-norm mel response of a sine at that pitch (a Hann-windowed STFT
    frame through the filterbank), averaged over detunings of +-0.5 semitone with a Gaussian of
    ``width_semitones``; each row is then scaled to unit norm, so that the class with more pitches
    in the band (C: 60, 72, 84 and 96; every other class three) does not weigh more (unscaled, C
    won 53-55% of the frames of white or pink noise; scaled, ~30%, as its comb still spans both
    band edges; :func:`pitch_classes_from_mel` makes such frames rests). ``chroma_matrix @
    mel_power`` is then a matched filter: with 64 mels a bin spans up to ~3 semitones near middle
    C, and the *pattern* across overlapping bins still identifies the pitch (a pure tone's argmax
    is its pitch class for every MIDI pitch 60-96).
    """
    return _chroma_matrix(cfg, float(f_low), float(f_high), float(width_semitones)).clone()


def _chroma_energy(mel: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Mel power gathered into pitch classes ``[B, n_mels, frames] -> [B, 12, frames]``."""
    power = norm_to_power(mel, cfg)
    matrix = _chroma_matrix(cfg, MIDDLE_C_HZ, 2100.0, 0.75).to(mel.device, power.dtype)
    return torch.einsum("cm,bmt->bct", matrix, power)


def _chroma_logits(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Logits of :func:`chroma`: ``log10(energy) / temperature`` ``[B, 12, frames]``."""
    return torch.log10(_chroma_energy(mel, cfg) + 1e-10) / temperature


def chroma(mel: torch.Tensor, cfg: MelConfig, temperature: float = 1.0) -> torch.Tensor:
    """Per-frame pitch-class distribution ``[B, n_mels, frames] -> [B, 12, frames]`` (softmax over log
    energy)."""
    return torch.softmax(_chroma_logits(mel, cfg, temperature), dim=1)


def _voiced(mel: torch.Tensor, energy: torch.Tensor, cfg: MelConfig, rest_db: float) -> torch.Tensor:
    """Which frames carry a note ``[B, frames]`` (bool): the one voicing rule of the melody target.

    A frame is voiced when all three hold:

    * loud enough: its chroma energy is at most ``-rest_db`` dB below the clip's loudest frame;
    * pitched: its strongest pitch class holds at least :data:`MIN_PEAKINESS` of its chroma energy
      (noise and silence spread it over the classes);
    * in the band: its strongest single pitch (the unit templates of every MIDI pitch of the band
      and :data:`GUARD_SEMITONES` either side, matched against the mel power) lies in the band.
      Otherwise what sounds is outside it, and only leaks into the edge classes: a bass, a pad or
      a kick below middle C, a hi-hat above C7 (a melody note below middle C is a rest too: the
      band starts there).
    """
    level = 10 * torch.log10(energy.sum(1) + 1e-10)  # [B, frames]
    loud = level >= level.max(-1, keepdim=True).values + rest_db
    pitched = energy.max(1).values >= MIN_PEAKINESS * energy.sum(1)
    first, last = _pitches(MIDDLE_C_HZ, 2100.0)
    guard = _pitch_templates(cfg, first - GUARD_SEMITONES, last + GUARD_SEMITONES, 0.75)
    strongest = torch.einsum("pm,bmt->bpt", guard.to(mel.device, energy.dtype),
                             norm_to_power(mel, cfg)).argmax(1) - GUARD_SEMITONES + first
    return loud & pitched & (strongest >= first) & (strongest <= last)


def _pitch_classes(mel: torch.Tensor, cfg: MelConfig, rest_db: float = -40.0) -> torch.Tensor:
    """Top-1 chroma of the voiced frames (:func:`_voiced`), -1 elsewhere ``[B, frames]`` int64."""
    mel = mel.detach().float()
    energy = _chroma_energy(mel, cfg)  # [B, 12, frames]
    return torch.where(_voiced(mel, energy, cfg, rest_db), energy.argmax(1), -1)


def chroma_agreement(mel_a: torch.Tensor, mel_b: torch.Tensor, cfg: MelConfig) -> float:
    """Fraction of the frames voiced in ``mel_a`` (the reference) whose pitch class ``mel_b`` matches.

    Both mels are read as melody targets (:func:`pitch_classes_from_mel`: top-1 chroma where the
    frame is loud, pitched and in the band, else a rest), and only the frames where the reference
    has a note are judged: a rest in ``mel_b`` there is a miss, and the reference's own rests,
    noise or drums do not count (agreeing on the top class of noise says nothing). NaN when the
    reference has no voiced frame.
    """
    a = _pitch_classes(check_mel(mel_a, cfg), cfg)
    b = _pitch_classes(check_mel(mel_b, cfg), cfg)
    if a.shape != b.shape:
        raise ValueError(f"mel_a and mel_b must have the same shape, got {tuple(mel_a.shape)} and "
                         f"{tuple(mel_b.shape)}")
    voiced = a >= 0
    if not voiced.any():
        return float("nan")
    return float((a[voiced] == b[voiced]).float().mean())


def pitch_classes_from_mel(mel: torch.Tensor, cfg: MelConfig, rest_db: float = -40.0) -> torch.Tensor:
    """Melody target of a reference mel ``[B, n_mels, frames] -> [B, frames]`` (int64, -1 = rest): the
    top-1 chroma class of each voiced frame.

    A frame is a rest unless it is voiced (:func:`_voiced`, the one rule, shared with
    :func:`chroma_agreement`): its energy above middle C is within ``-rest_db`` dB of the clip's
    loudest frame, its strongest pitch class holds at least :data:`MIN_PEAKINESS` of that energy
    (noise does not), and its strongest pitch lies in the band, not just outside it
    (:data:`GUARD_SEMITONES`; drums, bass and pads do not). So noise, drums and silence give rests,
    not notes; so do a melody note below middle C and a frame where the accompaniment below middle
    C is louder than the melody.
    """
    mel = check_mel(mel.detach().float(), cfg)
    silent = [i for i in range(len(mel)) if float(mel[i].max()) <= -0.99]
    if silent:
        raise ValueError(f"reference mel example(s) {silent} are silent (every bin at the -1 floor, "
                         f"{cfg.db_min:g} dB): a silent clip has no melody to follow")
    return _pitch_classes(mel, cfg, rest_db)


@dataclass(frozen=True, eq=False)
class MelodyControl(Control):
    """Melody: ``f`` = :func:`chroma` ``[B, 12, frames]``, ``y`` = pitch class per frame ``[1 or B, frames]``.

    Loss: cross-entropy ``-log f[y_t, t]`` averaged over the voiced frames (``y_t >= 0``; -1 =
    rest is ignored). Evaluation: frame accuracy of the top-1 librosa STFT chroma of the decoded
    audio, high-passed at middle C, on voiced target frames (key ``accuracy``).
    """

    target: torch.Tensor  # [1 or B, frames] int64 in -1..11
    temperature: float = 1.0
    name: ClassVar[str] = "melody"

    def __post_init__(self) -> None:
        t = self.target
        t = t.detach().cpu() if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                raise ValueError("melody target contains NaN or infinite values")
            if (t != t.round()).any():
                raise ValueError("melody target must hold integer pitch classes (0..11, -1 = rest)")
        t = t.long()
        t = t[None] if t.ndim == 1 else t
        if t.ndim != 2:
            raise ValueError(f"melody target must be [T] or [B, T], got shape {tuple(t.shape)}")
        if ((t < -1) | (t > 11)).any():
            raise ValueError(f"melody target values must be pitch classes 0..11 or -1 (rest), got "
                             f"{sorted(set(t[(t < -1) | (t > 11)].tolist()))[:5]}")
        _check_frames(t.shape[-1], self.frames, "melody target")
        empty = [i for i in range(len(t)) if not (t[i] >= 0).any()]
        if empty:
            raise ValueError(f"melody target has no voiced frame (all -1 = rest) in example(s) {empty}")
        object.__setattr__(self, "target", t)

    def feature(self, mel: torch.Tensor) -> torch.Tensor:
        return chroma(self.check(mel), self.cfg, self.temperature)

    def loss(self, mel: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(_chroma_logits(self.check(mel), self.cfg, self.temperature), dim=1)
        y = _batch(self.target, len(mel), "melody target").to(mel.device)
        voiced = (y >= 0).to(logp.dtype)  # [B, frames]
        nll = -logp.gather(1, y.clamp_min(0)[:, None])[:, 0]  # [B, frames]
        return (nll * voiced).sum(-1) / voiced.sum(-1)

    def evaluate(self, wave: torch.Tensor | np.ndarray) -> dict[str, list[float]]:
        top = torch.from_numpy(librosa_chroma(wave_np(wave, self.cfg, self.frames), self.cfg).argmax(1))
        y = _batch(self.target, len(top), "melody target")
        voiced = y >= 0
        hits = ((top == y) & voiced).sum(-1).float() / voiced.sum(-1)
        return {"accuracy": [float(h) for h in hits]}

    def describe(self) -> str:
        voiced = float((self.target >= 0).float().mean())
        return (f"melody: chroma cross-entropy vs {len(self.target)} pitch-class sequence(s) of "
                f"{self.frames} frames ({voiced:.0%} voiced), temperature {self.temperature:g}")


def melody_control(target: ClipLabels | Sequence[ClipLabels] | torch.Tensor | np.ndarray,
                   cfg: MelConfig, temperature: float = 1.0) -> MelodyControl:
    """Melody control from procedural labels (their ``pitch_class``), a list of them (one per
    example), or pitch classes ``[frames]`` / ``[B, frames]`` (-1 = rest), e.g. from
    :func:`pitch_classes_from_mel` of any reference clip's mel."""
    if isinstance(target, ClipLabels):
        target = [target]
    if isinstance(target, (list, tuple)) and target and isinstance(target[0], ClipLabels):
        if any(lab.pitch_class is None for lab in target):
            raise ValueError("these labels have no pitch_class (unknown melody); use "
                             "pitch_classes_from_mel on the clip's mel instead")
        target = np.stack([lab.pitch_class for lab in target]).astype(np.int64)
    t = torch.as_tensor(np.asarray(target)) if not isinstance(target, torch.Tensor) else target
    if t.ndim == 0 or t.shape[-1] == 0:
        raise ValueError(f"melody target must be [T] or [B, T] with T > 0, got shape {tuple(t.shape)}")
    return MelodyControl(cfg, t.shape[-1], t, temperature)


# ----------------------------------------------------------------------------- a melody typed by hand

_NOTE_RE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)?$")
_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


class TypedMelody(NamedTuple):
    """A melody written as text, placed on a clip's frames.

    ``pitch_class`` ``[frames]`` int64 (-1 = rest, also after the melody ends) is what
    :func:`melody_control` takes; ``midi`` ``[frames]`` (0 = rest); ``notes`` the sounding notes
    (onset and duration in seconds, MIDI) that fit in the clip; ``dropped`` how many notes start
    after the clip's end."""

    pitch_class: np.ndarray
    midi: np.ndarray
    notes: list[Note]
    dropped: int


def _note_names(text: str, beat_s: float) -> list[Note]:
    """``"C4 E4 G4:2 r A#4:0.5"`` -> notes (a rest advances time); the default octave is 4 and
    a note lasts one beat unless ``:beats`` says otherwise."""
    notes, t = [], 0.0
    for k, token in enumerate(text.replace(",", " ").split()):
        name, _, beats = token.partition(":")
        try:
            length = float(beats) if beats else 1.0
        except ValueError:
            length = -1.0
        if not length > 0:
            raise ValueError(f"melody token {k + 1} {token!r}: the length after ':' must be a positive "
                             "number of beats (e.g. 'E4:0.5')")
        if name.lower() in ("r", "-", "rest"):
            t += length * beat_s
            continue
        m = _NOTE_RE.match(name)
        if m is None:
            raise ValueError(f"melody token {k + 1} {token!r} is not a note: write a letter A-G, an "
                             "optional # or b and an octave (C4 = middle C), or r for a rest")
        letter, accidental, octave = m.groups()
        midi = 12 * (int(octave if octave is not None else 4) + 1) + _SEMITONE[letter.upper()]
        midi += {"#": 1, "b": -1, "": 0}[accidental]
        if not 0 < midi < 128:
            raise ValueError(f"melody token {k + 1} {token!r} is outside MIDI 1-127")
        notes.append(Note(t, length * beat_s, midi))
        t += length * beat_s
    return notes


def _abc(text: str, beat_s: float) -> list[Note]:
    """An ABC tune (music21 parses it; ``X:`` is added when missing) -> its top line's notes."""
    import music21

    src = text if text.lstrip().startswith("X:") else "X:1\n" + text.lstrip()
    try:
        score = music21.converter.parse(src, format="abc")
    except Exception as e:  # noqa: BLE001  (music21 raises many kinds)
        raise ValueError(f"the ABC melody could not be parsed by music21: {e}") from e
    notes = []
    for n in score.flatten().notes:
        top = max(p.midi for p in n.pitches)
        notes.append(Note(float(n.offset) * beat_s, float(n.quarterLength) * beat_s, int(top)))
    return notes


def melody_from_text(text: str, cfg: MelConfig, bpm: float = 100.0, frames: int | None = None) -> TypedMelody:
    """A melody you type, as a per-frame target for :func:`melody_control`.

    ``text`` is either note names (``"E4 D4 C4 D4 E4 E4 E4:2"``: a letter, an optional ``#`` or
    ``b``, an octave with C4 = middle C; ``r`` is a rest; ``:beats`` sets a length, 1 beat by
    default) or a small ABC tune with a ``K:`` (key) line, parsed by music21 (e.g.
    ``"L:1/4\\nK:G\\nG A B c | d2 z d |"``; a chord counts as its top note). One beat (a quarter
    note in ABC) lasts ``60 / bpm`` seconds. Frame ``t`` is the instant ``t * hop / sample_rate``,
    as in the data's labels; notes starting after the clip's ``frames`` are dropped (counted)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"melody text must be a non-empty string of notes, got {text!r}")
    bpm = float(bpm)
    if not 20.0 <= bpm <= 400.0:
        raise ValueError(f"bpm={bpm:g} is outside 20-400 beats per minute")
    frames = cfg.frames if frames is None else int(frames)
    if frames < 1:
        raise ValueError(f"frames={frames} must be at least 1")
    beat_s = 60.0 / bpm
    is_abc = any(line.strip().startswith("K:") for line in text.splitlines())
    notes = _abc(text, beat_s) if is_abc else _note_names(text, beat_s)
    if not notes:
        raise ValueError(f"the melody {text!r} has no notes (only rests)")
    times = np.arange(frames) * cfg.hop_length / cfg.sample_rate
    inside = [n for n in notes if n.onset < times[-1] + cfg.hop_length / cfg.sample_rate]
    midi = _pitch_per_frame(inside, times).astype(np.int64)
    return TypedMelody(np.where(midi > 0, midi % 12, -1).astype(np.int64), midi, inside,
                       len(notes) - len(inside))


def melody_from_audio(wave: torch.Tensor | np.ndarray, sample_rate: int, cfg: MelConfig,
                      frames: int | None = None, min_note_frames: int = 3) -> TypedMelody:
    """A melody you sing, play or record, as a per-frame target for :func:`melody_control`: the
    pretrained pitch judge's reading of the audio (:func:`ditto2_nb.audio.judge_pitch`, PESTO).

    ``wave`` ``[L]`` (or ``[1, L]``) at ``sample_rate`` Hz; its first ``frames`` frames (default
    ``cfg.frames``) are read, frames past its end are rests. A **note** is a run of frames the judge
    hears on the same nearest semitone for at least ``min_note_frames`` frames; shorter runs
    (glides, onsets, a wobble) and unvoiced frames become rests, so ``pitch_class`` and ``notes``
    agree. Returns a :class:`TypedMelody` (``dropped`` = 0)."""
    from ..audio.pitch import judge_pitch

    frames = cfg.frames if frames is None else int(frames)
    if frames < 1:
        raise ValueError(f"frames={frames} must be at least 1")
    if int(min_note_frames) < 1:
        raise ValueError(f"min_note_frames={min_note_frames} must be at least 1")
    w = torch.as_tensor(np.asarray(wave, dtype=np.float32)) if not isinstance(wave, torch.Tensor) else wave
    if w.ndim == 2 and len(w) == 1:
        w = w[0]
    if w.ndim != 1:
        raise ValueError(f"melody_from_audio reads one clip: give wave [L] or [1, L], got shape "
                         f"{tuple(w.shape)}")
    track = judge_pitch(w, sample_rate, cfg).midi[0][:frames]  # [<= frames], NaN = unvoiced
    semitone = np.zeros(frames, dtype=np.int64)
    semitone[: len(track)] = np.where(np.isfinite(track), np.round(np.nan_to_num(track)), 0)
    step = cfg.hop_length / cfg.sample_rate
    notes, start = [], 0
    for t in range(1, frames + 1):  # runs of one semitone
        if t == frames or semitone[t] != semitone[start]:
            if semitone[start] > 0 and t - start >= int(min_note_frames):
                notes.append(Note(start * step, (t - start) * step, int(semitone[start])))
            else:
                semitone[start:t] = 0
            start = t
    return TypedMelody(np.where(semitone > 0, semitone % 12, -1).astype(np.int64), semitone, notes, 0)
