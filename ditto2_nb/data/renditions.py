"""One piece of the rendered repertoire as clips: its renditions planned, performed, rendered,
levelled, shaped by their dynamics and cut into clips, each with exact labels, an info dict and a
caption.

Labels (:class:`~ditto2_nb.data.labels.ClipLabels`, exact from the score)
    ``source`` = the piece id, ``genre``, ``notes`` / ``pitch`` / ``pitch_class`` = the melody part
    (MIDI per frame, 0 = rest), ``chords``, ``intensity_db``, ``bpm`` / ``tempo``, ``tonic`` /
    ``mode`` (after transposition), ``instrument`` = the melody's GM name (e.g. ``"Violin"``),
    ``has_drums`` / ``drum_pattern``, ``dynamics``, ``gain_db``, ``start_s`` (seconds into the
    performance). What :class:`ClipLabels` has no field for is in the per-clip ``info`` dicts:
    collection, title, split, form (reel, jig...), every instrument, accompaniment, transposition,
    velocity, reverb, exact mode name, key source, fingerprint and the caption
    (:func:`repertoire_caption`). The pitch is the score's; what sounds is that pitch, but
    FluidR3_GM's organs add a stop an octave below, and at some pitches the melody control's
    chroma reads a harmonic of the clarinet, oboe, harmonica or trumpet rather than its pitch class
    (librosa's yin agrees with the score there; flute, violin, piano: >= 80 % chroma agreement).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import MelConfig
from .arranging import _perform, _Plan, _plan, gm_name
from .captions import DRUM_WORDS, DYN_ADJ, TEMPO_WORDS
from .composition import _intensity_db
from .labels import ClipLabels, Note, _pitch_class, _pitch_per_frame
from .rendering import _additive, _FluidRenderer
from .scores import COLLECTIONS, SPLITS, Piece
from .synthesis import PEAK_LIMIT
from .theory import tempo_class

LEVEL_DBFS = -15.0  # clip RMS over active frames at 0 dB intensity (the procedural "loud" level)


def _level(clip: np.ndarray, hop: int) -> float | None:
    """RMS over the clip's active frames (within 40 dB of its loudest), or None when silent."""
    frames = clip[: len(clip) // hop * hop].reshape(-1, hop)
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    if power.max() < 1e-8:  # below -80 dBFS: silence
        return None
    return float(np.sqrt(power[power > power.max() * 1e-4].mean()))


_FORMS = ("reel", "jig", "slip jig", "single jig", "double jig", "hornpipe", "air", "march",
          "waltz", "polka", "strathspey", "slide", "set dance", "schottische", "quickstep",
          "quick step", "planxty", "mazurka", "fling", "clog", "minuet", "lament", "song",
          "country dance", "highland fling", "long dance", "barn dance", "cotillon", "rant")


def spoken_name(program: int | str) -> str:
    """A GM instrument as a caption says it: ``"Acoustic Guitar (nylon)" -> "nylon-string guitar"``."""
    name = gm_name(program) if isinstance(program, int) else program
    special = {"Acoustic Grand Piano": "piano", "Acoustic Guitar (nylon)": "nylon-string guitar",
               "Acoustic Guitar (steel)": "steel-string guitar", "Lead 1 (square)": "square-wave lead",
               "Lead 2 (sawtooth)": "sawtooth lead", "Electric Bass (finger)": "electric bass",
               "Orchestral Harp": "harp", "Choir Aahs": "choir"}
    if name in special:
        return special[name]
    return re.sub(r"\s+\d+$", "", name).lower()


def _form(score: dict[str, Any], genre: str) -> str:
    form = str(score.get("form", "")).strip(" .").lower()
    return form if form in _FORMS else genre


def repertoire_caption(labels: ClipLabels, info: dict[str, Any]) -> str:
    """E.g. "a fast, soft violin reel in D major with piano chords and an acoustic bass line, with
    drums" -- from the labels and the clip's info only."""
    what = info.get("form") if info.get("form") in _FORMS else labels.genre
    others = {k: spoken_name(int(v)) for k, v in info.get("accompaniment_instruments", {}).items()}
    bass, octave = others.get("bass", ""), others.get("octave", "")
    line = f"{bass} line" if "bass" in bass else f"{bass} bass line"
    phrase = {
        "none": "",
        "bass": f" over {_article(line)} {line}",
        "chords": f" with {others.get('chords', '')} chords and {_article(line)} {line}",
        "strum": f" with {others.get('chords', '')} chords on the beat over {_article(line)} {line}",
        "octave": f" doubled an octave below by {_article(octave)} {octave}",
        "ensemble": " (all voices on one instrument)",
        "accompanied": f" with the lower voices on {others.get('voices', '')}",
    }[info.get("accompaniment", "none")]
    inst = spoken_name(labels.instrument or "")
    return (f"a {TEMPO_WORDS[labels.tempo][0]}, {DYN_ADJ[labels.dynamics][0]} {inst} {what} in "
            f"{labels.key}{phrase}, {DRUM_WORDS[bool(labels.has_drums)][0]}")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _piece_clips(piece: Piece, score: dict[str, Any], split: str, cfg: MelConfig, renderer: str,
                 soundfont: Path | None, seed: int, renditions: int, clips_per_rendition: int,
                 pass_index: int = 0, plans: Sequence[_Plan] | None = None,
                 ) -> tuple[list[np.ndarray], list[ClipLabels], list[dict[str, Any]], int, dict[str, float]]:
    """Every clip of one piece: (waves, labels, info, silent clips dropped, timings). ``plans``
    replaces the drawn renditions (:func:`render_piece`)."""
    sr, hop, n = cfg.sample_rate, cfg.hop_length, cfg.n_samples
    window_s = clips_per_rendition * n / sr
    piece_hash = int(hashlib.sha256(piece.id.encode()).hexdigest()[:12], 16)
    rng = np.random.default_rng([seed, SPLITS.index(split), piece_hash, pass_index])
    genre = COLLECTIONS[piece.collection][1]
    synth = None
    waves, labels, infos, silent = [], [], [], 0
    t_render, audio_s = 0.0, 0.0
    used: set[float] = set()
    try:
        for r in range(renditions):
            plan = plans[r] if plans is not None else _plan(rng, score, window_s, used, clips_per_rendition)
            parts, pre, melody, chords = _perform(score, plan, window_s)
            pre_n = int(round(pre * sr))
            total = pre_n + clips_per_rendition * n
            t0 = time.perf_counter()
            if renderer == "fluidsynth":
                synth = synth or _FluidRenderer(soundfont, sr)
                wave, clipped = synth.render(parts, total, plan.reverb)
                if clipped:
                    wave, _ = synth.render(parts, total, plan.reverb, volume_scale=0.5)
            else:
                wave = _additive(parts, total, sr, plan.seed)
            t_render += time.perf_counter() - t0
            audio_s += total / sr
            dyn_rng = np.random.default_rng(plan.seed + 1)
            for k in range(clips_per_rendition):
                a = pre_n + k * n
                clip = wave[a: a + n].astype(np.float64)
                level = _level(clip, hop)
                shape = plan.dynamics[k]
                times = np.arange(n // hop) * hop / sr
                intensity = _intensity_db(dyn_rng, shape, times / (n / sr))
                if level is None:
                    silent += 1
                    continue
                clip *= 10.0 ** (LEVEL_DBFS / 20.0) / level
                clip *= 10.0 ** (np.interp(np.arange(n) / sr, times, intensity) / 20.0)
                peak = float(np.abs(clip).max())
                gain = min(1.0, PEAK_LIMIT / peak) if peak > 0 else 1.0
                gain_db = 20.0 * math.log10(gain)
                clip_s0 = k * n / sr
                seg = [Note(float(max(on, clip_s0) - clip_s0),
                            float(min(on + du, clip_s0 + n / sr) - max(on, clip_s0)), int(m))
                       for on, du, m in melody if on < clip_s0 + n / sr and on + du > clip_s0]
                pitch = _pitch_per_frame(seg, times)
                clip_s1 = clip_s0 + n / sr
                chs = [c._replace(onset=max(c.onset, clip_s0) - clip_s0,
                                  duration=min(c.onset + c.duration, clip_s1) - max(c.onset, clip_s0))
                       for c in chords if c.onset < clip_s1 and c.onset + c.duration > clip_s0]
                spq = 60.0 / plan.bpm
                lab = ClipLabels(
                    source=piece.id, sample_rate=sr, hop_length=hop, n_frames=n // hop, genre=genre,
                    seed=plan.seed, start_s=round(plan.start_ql * spq + clip_s0, 6), notes=seg,
                    chords=chs, pitch=pitch, pitch_class=_pitch_class(pitch),
                    intensity_db=(intensity + gain_db).astype(np.float32), bpm=plan.bpm,
                    tempo=tempo_class(plan.bpm), tonic=(int(score["tonic"]) + plan.transpose) % 12,
                    mode=str(score["mode"]), instrument=gm_name(plan.program),
                    has_drums=plan.drum_pattern is not None, drum_pattern=plan.drum_pattern,
                    dynamics=shape, gain_db=gain_db)
                instruments = sorted({gm_name(p.program) for p in parts if p.program is not None})
                info = {"piece": piece.id, "collection": piece.collection, "title": piece.title,
                        "group": piece.group, "split": split, "form": _form(score, genre),
                        "rendition": r + renditions * pass_index, "accompaniment": plan.style,
                        "accompaniment_instruments": dict(plan.programs),
                        "instruments": instruments, "program": plan.program,
                        "transpose": plan.transpose, "velocity": plan.velocity, "reverb": plan.reverb,
                        "mode_name": score["mode_name"], "key_source": score["key_source"],
                        "metre": score["metre"], "fingerprint": score["fingerprint"],
                        "renderer": renderer}
                info["caption"] = repertoire_caption(lab, info)
                waves.append((clip * gain).astype(np.float32))
                labels.append(lab)
                infos.append(info)
    finally:
        if synth is not None:
            synth.close()
    return waves, labels, infos, silent, {"render_s": t_render, "audio_s": audio_s}
