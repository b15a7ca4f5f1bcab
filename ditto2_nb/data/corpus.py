"""A symbolic corpus as training data: music21's Bach chorales or Essen folk songs exported to MIDI
and rendered with FluidSynth and pretty_midi's General MIDI soundfont when libfluidsynth imports,
else with a small additive synthesiser; clips carry the top voice's notes as labels.

Pieces that fail to parse, export or render are skipped and listed in the summary (cached).
"""

from __future__ import annotations

import importlib.metadata
import io
import math
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..audio.files import rms_db
from ..core.config import MelConfig, to_dict
from .cache import (
    DATA_VERSION,
    _hash,
    _labels_from_arrays,
    _labels_to_arrays,
    _load_cache,
    _save_cache,
    cache_root,
)
from .datasets import MelDataset, _cached_dataset, waves_to_mels
from .labels import ClipLabels, Note, _pitch_class, _pitch_per_frame
from .summaries import DataError, RenderSummary, _summary_from_json, _summary_to_json
from .theory import MODES, midi_to_hz, tempo_class

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
        if rms_db(torch.from_numpy(clip)) < silence_db:
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
