"""A rendered repertoire with exact labels: thousands of real tunes from music21's corpus, performed
offline with FluidSynth and a General MIDI soundfont, each clip labelled from its score.

The rendered repertoire in five modules, each a step:

    :mod:`.scores`      the catalogue (:data:`COLLECTIONS`, ~13,000 pieces), groups and the
                        train / held-out / evaluator split by piece; each piece parsed into note
                        lists (cached)
    :mod:`.arranging`   how a piece is performed: instrument, accompaniment, drums, transposition,
                        tempo, velocity, reverb, start bar, dynamics drawn per rendition
    :mod:`.rendering`   the synthesisers: FluidSynth with FluidR3_GM (or TimGM6mb), the additive
                        fallback
    :mod:`.renditions`  one piece -> clips: rendered, levelled, shaped by their dynamics, each with
                        exact labels, an info dict and a caption (:func:`repertoire_caption`)
    this module         the builds: the renderer (:func:`resolve_renderer`), :func:`render_repertoire`
                        (waves), :func:`repertoire_dataset` (mels) and the presets' splits, their
                        caches, the clips' conditioning tags and the data card

A rebuild is byte-identical; the cache key holds everything that changes the audio (renderer,
soundfont SHA-256, library versions, MelConfig, sizes, seed, collections). Pieces that fail to
parse or render are skipped and listed in the summary; silent clips are dropped and counted.

Tags (for the conditional models, :mod:`ditto2_nb.data.tags`)
    :func:`ditto2_nb.data.tags.tag_values` maps a clip onto the five tag fields: ``instrument`` -> the
    General MIDI family of its melody program (:data:`~ditto2_nb.data.theory.GM_FAMILY`: piano,
    mallets, guitar & harp, strings, brass, reeds, flutes, synth lead: instrument classes 7-14,
    after the six procedural timbres; or organ, class 5, the one class shared with the procedural
    timbres); ``tempo``, ``mode``, ``drums`` and ``dynamics`` are the labels themselves
    (same classes as the procedural data). ``labels.instrument`` holds the GM program's name.
    (:data:`~.arranging.TAG_TIMBRE`, the procedural timbre nearest
    to each program, is only how a melody program is drawn and what the additive fallback plays.)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..core import validate as check
from ..core.config import DataConfig, MelConfig, Preset, get_preset, to_dict
from .arranging import (
    ACCOMPANIMENTS,
    BASS_PROGRAMS,
    CHORD_PROGRAMS,
    OCTAVE_PROGRAMS,
    POLY_ACCOMPANIMENTS,
    VOICES_PROGRAMS,
    _Plan,
    _plan,
)
from .arranging import MELODY_HIGH as MELODY_HIGH
from .arranging import MELODY_LOW as MELODY_LOW
from .arranging import P_DRUMS as P_DRUMS
from .arranging import PREROLL_S as PREROLL_S
from .arranging import PROGRAM_HIGH as PROGRAM_HIGH
from .arranging import TEMPO_RANGES as TEMPO_RANGES
from .arranging import _perform as _perform
from .cache import (
    DATA_VERSION,
    _atomic_write,
    _hash,
    _json_bytes,
    _labels_from_arrays,
    _labels_to_arrays,
    _load_cache,
    _save_cache,
    cache_root,
)
from .corpus import _version
from .corpus import soundfont_path as timgm_soundfont_path
from .datasets import MelDataset, waves_to_mels
from .labels import ClipLabels
from .labels import _pitch_per_frame as _pitch_per_frame
from .rendering import _additive as _additive
from .rendering import _FluidRenderer as _FluidRenderer
from .rendering import _fluidsynth_version, _libfluidsynth, _renderer_key, find_soundfont
from .rendering import soundfont_id as soundfont_id
from .renditions import LEVEL_DBFS as LEVEL_DBFS
from .renditions import _piece_clips
from .renditions import repertoire_caption as repertoire_caption
from .renditions import spoken_name as spoken_name
from .scores import (
    COLLECTIONS,
    SPLITS,
    Piece,
    _catalogue,
    _collections,
    _missing,
    collection_counts,
    load_score,
    piece_split,
    split_pieces,
)
from .scores import SPLIT_FRACTIONS as SPLIT_FRACTIONS
from .scores import repertoire_pieces as repertoire_pieces
from .summaries import DataError, RenderSummary, _summary_from_json, _summary_to_json
from .tags import tag_values
from .theory import DYNAMICS
from .theory import tempo_class as tempo_class

# ``from .module import name as name``: re-exported, a name this module held before the modules
# above were split off (code that reaches it here keeps working)

REPERTOIRE_VERSION = "1"  # bump when rendering or labelling changes: part of every cache key
_RENDERERS = ("auto", "fluidsynth", "additive")


# ----------------------------------------------------------------------------- renderer


def resolve_renderer(renderer: str = "auto", soundfont: str | os.PathLike | None = None,
                     announce: bool = True) -> tuple[str, Path | None]:
    """(``"fluidsynth"``, soundfont) or (``"additive"``, None).

    ``auto``: FluidR3_GM with FluidSynth, else pretty_midi's TimGM6mb, else the additive
    synthesiser; each fallback is announced with a warning. ``fluidsynth`` refuses to fall back to
    the additive synthesiser. ``soundfont`` picks the file (it must exist).
    """
    if renderer not in _RENDERERS:
        raise ValueError(f"renderer must be one of {_RENDERERS}, got {renderer!r}")
    if renderer == "additive":
        return "additive", None
    if soundfont is not None and not Path(soundfont).is_file():
        raise DataError(f"soundfont {soundfont}: no such file")
    if not _libfluidsynth():
        if renderer == "fluidsynth":
            raise DataError("renderer='fluidsynth' needs libfluidsynth (apt install fluidsynth, or run "
                            "scripts/system_deps.sh); use renderer='additive' or 'auto'")
        if announce:
            warnings.warn("libfluidsynth is not available: rendering the repertoire with the additive "
                          "synthesiser (install Debian's fluidsynth and fluid-soundfont-gm with "
                          "scripts/system_deps.sh for real instruments)", stacklevel=3)
        return "additive", None
    if soundfont is not None:
        return "fluidsynth", Path(soundfont)
    sf = find_soundfont()
    if sf is not None:
        return "fluidsynth", sf
    sf = timgm_soundfont_path()
    if sf is not None:
        if announce:
            warnings.warn("FluidR3_GM.sf2 not found (Debian's fluid-soundfont-gm, installed by "
                          f"scripts/system_deps.sh): rendering with pretty_midi's {sf.name}", stacklevel=3)
        return "fluidsynth", sf
    if renderer == "fluidsynth":
        raise DataError("renderer='fluidsynth' found no soundfont (FluidR3_GM or pretty_midi's TimGM6mb)")
    if announce:
        warnings.warn("no General MIDI soundfont found: rendering the repertoire with the additive "
                      "synthesiser", stacklevel=3)
    return "additive", None


# ----------------------------------------------------------------------------- tags


# ----------------------------------------------------------------------------- rendering the splits


def _work(args: tuple) -> tuple:
    """One piece, parsed (cached) and rendered: the unit of work (also in worker processes)."""
    piece, split, cfg, renderer, soundfont, seed, renditions, per, pass_index, cache_dir = args
    t0 = time.perf_counter()
    try:
        score = load_score(piece, cache_dir)
    except Exception as e:  # noqa: BLE001
        return piece, None, f"parse: {e}"[:300], time.perf_counter() - t0
    t_parse = time.perf_counter() - t0
    try:
        out = _piece_clips(piece, score, split, cfg, renderer, soundfont, seed, renditions, per, pass_index)
    except Exception as e:  # noqa: BLE001 - a piece that fails to render is skipped and listed
        return piece, None, f"render: {type(e).__name__}: {e}"[:300], t_parse
    return piece, out, None, t_parse


class RepertoireClips(NamedTuple):
    waves: np.ndarray  # [N, L] float32
    labels: list[ClipLabels]
    info: list[dict[str, Any]]
    summary: RenderSummary  # pieces tried, rendered, failed (piece -> reason), silent clips
    stats: dict[str, Any]  # timings (not part of the data: a rebuild's arrays are byte-identical)


def _check_args(split: str, n: int, renditions: int, per: int, workers: int, seed: int) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    check.limited("renditions_per_piece", renditions)
    check.limited("clips_per_rendition", per)
    check.limited("workers", workers)
    check.limited("seed", seed)
    return check.limited("n_clips", n, label=f"repertoire {split} n")


def _render(cfg: MelConfig, split: str, n: int, seed: int, collections: tuple[str, ...], renderer: str,
            soundfont: Path | None, renditions: int, per: int, workers: int, cache_dir: Any,
            progress: bool) -> RepertoireClips:
    t_start = time.perf_counter()
    order = split_pieces(split, collections, seed)
    summary = RenderSummary(f"repertoire/{split}", renderer if soundfont is None
                            else f"{renderer} ({soundfont.name})")
    waves: list[np.ndarray] = []
    labels: list[ClipLabels] = []
    infos: list[dict[str, Any]] = []
    stats = Counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"repertoire {split}", unit="clip")
    pool = None
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork on Linux (the work is numpy, music21 and FluidSynth only: no torch in the children);
        # elsewhere spawn, which needs the caller's script to guard its entry with __main__
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context(method))
    try:
        for pass_index in range(8):  # more passes (new renditions) only when the pieces run out
            i = 0
            while i < len(order) and len(labels) < n:
                need = n - len(labels)
                batch = order[i: i + max(1, min(workers * 4, math.ceil(need / (renditions * per)) + workers))]
                i += len(batch)
                tasks = [(p, split, cfg, renderer, soundfont, seed, renditions, per, pass_index, cache_dir)
                         for p in batch]
                results = pool.map(_work, tasks) if pool is not None else map(_work, tasks)
                for piece, out, err, t_parse in results:
                    stats["parse_s"] += t_parse
                    if len(labels) >= n:
                        continue  # rendered ahead in a batch; not needed
                    if pass_index == 0:
                        summary.n_pieces += 1
                    if err is not None:
                        summary.failed[piece.id] = err
                        continue
                    w, lab, inf, silent, t = out
                    if pass_index == 0:
                        summary.n_rendered += 1
                    summary.n_silent_clips += silent
                    stats["render_s"] += t["render_s"]
                    stats["audio_s"] += t["audio_s"]
                    take = min(len(lab), n - len(labels))
                    waves += w[:take]
                    labels += lab[:take]
                    infos += inf[:take]
                    if bar is not None:
                        bar.update(take)
            if len(labels) >= n or summary.n_rendered == 0:
                break
    finally:
        if pool is not None:
            pool.shutdown()
        if bar is not None:
            bar.close()
    if len(labels) < n:
        raise DataError(f"the {split} split of {list(collections)} gave only {len(labels)} of {n} "
                        f"clips:\n{summary}")
    summary.n_clips = len(labels)
    stats["wall_s"] = time.perf_counter() - t_start
    stats = {k: round(float(v), 3) for k, v in stats.items()}
    stats["workers"] = workers
    return RepertoireClips(waves, labels, infos, summary, stats)  # waves: a list, stacked by callers


def _key(cfg: MelConfig, split: str, n: int, seed: int, collections: tuple[str, ...], renderer: str,
         soundfont: Path | None, renditions: int, per: int) -> dict[str, Any]:
    order = "\n".join(p.id for p in split_pieces(split, collections, seed))
    return {"source": "repertoire", "split": split, "n": n, "seed": seed,
            "pieces": hashlib.sha256(order.encode()).hexdigest()[:16],  # the catalogue and its split
            "collections": {c: COLLECTIONS[c][2] for c in collections}, "renditions_per_piece": renditions,
            "clips_per_rendition": per, "mel": to_dict(cfg), "version": DATA_VERSION,
            "repertoire_version": REPERTOIRE_VERSION, "music21": _version("music21"),
            **_renderer_key(renderer, soundfont)}


def _stats_path(path: Path) -> Path:
    return path.with_name(path.stem + ".stats.json")


def render_repertoire(cfg: MelConfig, split: str = "train", n: int = 96, *, seed: int = 0,
                      collections: Iterable[str] | None = None, renderer: str = "auto",
                      soundfont: str | os.PathLike | None = None, renditions_per_piece: int = 3,
                      clips_per_rendition: int = 1, workers: int = 1,
                      cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                      progress: bool = False) -> RepertoireClips:
    """``n`` rendered clips of ``split`` as waveforms with exact labels (PCM cached when
    ``use_cache``; :func:`repertoire_dataset` keeps only the mels).

    Pieces are taken in :func:`split_pieces` order; each gives ``renditions_per_piece`` renditions
    of ``clips_per_rendition`` consecutive clips of ``cfg.n_samples`` (the clip length comes from
    the MelConfig). Pieces that fail to parse or render are skipped and listed in
    ``summary.failed``; silent clips are dropped and counted.

    Returns
    -------
    RepertoireClips(waves float32 ``[n, cfg.n_samples]``, labels, info dicts, summary, stats).
    """
    n = _check_args(split, n, renditions_per_piece, clips_per_rendition, workers, seed)
    names = _collections(collections)
    renderer, sf = resolve_renderer(renderer, soundfont)
    key = _key(cfg, split, n, seed, names, renderer, sf, renditions_per_piece, clips_per_rendition)
    path = cache_root(cache_dir) / f"repertoire-waves-{split}-{_hash(key)}.npz"

    def decode(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> RepertoireClips:
        waves = arrays.pop("waves_pcm16").astype(np.float32) / 32767.0
        info = json.loads(arrays.pop("info_json").tobytes())
        labels = _labels_from_arrays(arrays)
        if len(waves) != len(labels) or waves.shape[1:] != (cfg.n_samples,):
            raise ValueError(f"waves {waves.shape} do not match {len(labels)} labels")
        stats = json.loads(_stats_path(path).read_text()) if _stats_path(path).is_file() else {}
        return RepertoireClips(waves, labels, info, _summary_from_json(manifest["summary"]), stats)

    hit = _load_cache(path, key, decode) if use_cache else None
    if hit is not None:
        return hit
    out = _render(cfg, split, n, seed, names, renderer, sf, renditions_per_piece, clips_per_rendition,
                  workers, cache_dir, progress)
    # 16-bit PCM, the form the cache keeps: the first call returns the very waveforms later calls
    # read back (a training resumed on a cache hit sees the same data as the run it resumes)
    pcm = np.round(np.clip(np.stack(out.waves), -1, 1) * 32767).astype(np.int16)
    out = out._replace(waves=pcm.astype(np.float32) / 32767.0)
    if use_cache:
        manifest = {"key": key, "n": len(out.labels), "summary": _summary_to_json(out.summary)}
        _save_cache(path, {"waves_pcm16": pcm, "info_json": _json_bytes(out.info),
                           **_labels_to_arrays(out.labels)}, manifest)
        text = json.dumps(out.stats, indent=1).encode()
        _atomic_write(_stats_path(path), lambda f: f.write(text))
    return out


def render_piece(piece: Piece | str, cfg: MelConfig, *, seed: int = 0, renderer: str = "auto",
                 soundfont: str | os.PathLike | None = None, program: int | None = None,
                 accompaniment: str | None = None, drums: bool | None = None,
                 transpose: int | None = None, bpm: float | None = None, dynamics: str | None = None,
                 start_bar: int | None = None, clips: int = 1,
                 cache_dir: str | os.PathLike | None = None) -> RepertoireClips:
    """One rendition of one piece, any attribute fixed by hand (the rest drawn from ``seed``):
    for tutorials, listening and tests. ``program`` is a GM program, ``accompaniment`` a key of
    ``ACCOMPANIMENTS`` (or ``POLY_ACCOMPANIMENTS`` for chorales), ``start_bar`` an index into the
    piece's bars."""
    if isinstance(piece, str):
        piece = next((p for p in _catalogue() if p.id == piece), None) or _missing(piece)
    clips = check.limited("clips_per_rendition", clips, label="clips")
    renderer, sf = resolve_renderer(renderer, soundfont)
    score = load_score(piece, cache_dir)
    rng = np.random.default_rng([seed, 99, int(hashlib.sha256(piece.id.encode()).hexdigest()[:12], 16)])
    plan = _plan(rng, score, clips * cfg.n_samples / cfg.sample_rate, set(), clips)
    styles = POLY_ACCOMPANIMENTS if len(score["parts"]) > 1 else ACCOMPANIMENTS
    if accompaniment is not None and accompaniment not in styles:
        raise ValueError(f"accompaniment must be one of {list(styles)} for {piece.id}, got {accompaniment!r}")
    changes: dict[str, Any] = {}
    if program is not None:
        changes["program"] = check.integer("program", program, 0, 127, meaning="GM program")
    if accompaniment is not None and accompaniment != plan.style:
        progs = {"bass": BASS_PROGRAMS[0], "chords": CHORD_PROGRAMS[0], "octave": OCTAVE_PROGRAMS[0],
                 "voices": VOICES_PROGRAMS[0]}
        need = {"bass": ("bass",), "chords": ("bass", "chords"), "strum": ("bass", "chords"),
                "octave": ("octave",), "accompanied": ("voices",)}.get(accompaniment, ())
        changes.update(style=accompaniment, programs={r: plan.programs.get(r, progs[r]) for r in need})
    if drums is not None:
        changes["drum_pattern"] = (plan.drum_pattern or "rock") if drums else None
    if transpose is not None:
        changes["transpose"] = check.integer("transpose", transpose, -24, 24, meaning="semitones")
    if bpm is not None:
        changes["bpm"] = check.real("bpm", bpm, 20.0, 400.0, meaning="quarter notes per minute")
    if dynamics is not None:
        if dynamics not in DYNAMICS:
            raise ValueError(f"dynamics must be one of {DYNAMICS}, got {dynamics!r}")
        changes["dynamics"] = (dynamics,) * clips
    if start_bar is not None:
        bars = score["measures"]
        changes["start_ql"] = float(bars[check.integer("start_bar", start_bar, 0, len(bars) - 1)])
    plan = plan._replace(**changes)
    if bpm is not None or start_bar is not None:
        window_ql = clips * cfg.n_samples / cfg.sample_rate * plan.bpm / 60.0
        plan = plan._replace(loops=1 + math.ceil((plan.start_ql + window_ql) / float(score["end"])))
    return _render_plans(piece, score, [plan], cfg, renderer, sf, clips)


def _render_plans(piece: Piece, score: dict[str, Any], plans: list[_Plan], cfg: MelConfig, renderer: str,
                  sf: Path | None, clips: int) -> RepertoireClips:
    w, lab, inf, silent, t = _piece_clips(piece, score, piece_split(piece), cfg, renderer, sf, 0,
                                          len(plans), clips, plans=plans)
    summary = RenderSummary(piece.id, renderer, 1, 1, len(lab), silent)
    waves = np.stack(w) if w else np.zeros((0, cfg.n_samples), np.float32)
    return RepertoireClips(waves, lab, inf, summary, t)


# ----------------------------------------------------------------------------- datasets


class RepertoireDataset(MelDataset):
    """A :class:`MelDataset` of rendered clips with their ``info`` dicts (captions from
    :func:`repertoire_caption`) and the build's ``stats`` (timings)."""

    def __init__(self, mels: torch.Tensor, labels: Sequence[ClipLabels], info: Sequence[dict[str, Any]],
                 cfg: MelConfig, name: str = "", summary: Any = None, cache_path: Path | None = None,
                 from_cache: bool = False, stats: dict[str, Any] | None = None):
        super().__init__(mels, labels, cfg, name, summary, cache_path, from_cache)
        if len(info) != len(self.labels):
            raise ValueError(f"{len(info)} info dicts for {len(self.labels)} clips")
        self.info, self.stats = list(info), dict(stats or {})

    @property
    def captions(self) -> list[str]:
        return [x["caption"] for x in self.info]

    def random_captions(self, rng: np.random.Generator) -> list[str]:
        return self.captions

    def subset(self, indices: Sequence[int]) -> RepertoireDataset:
        idx = list(indices)
        return RepertoireDataset(self.mels[idx], [self.labels[i] for i in idx], [self.info[i] for i in idx],
                                 self.cfg, f"{self.name}[subset]")


def repertoire_dataset(cfg: MelConfig, split: str = "train", n: int = 96, *, seed: int = 0,
                       collections: Iterable[str] | None = None, renderer: str = "auto",
                       soundfont: str | os.PathLike | None = None, renditions_per_piece: int = 3,
                       clips_per_rendition: int = 1, workers: int = 1,
                       cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                       progress: bool = False) -> RepertoireDataset:
    """Mels ``[n, n_mels, cfg.frames]`` of :func:`render_repertoire`'s clips, cached like the
    procedural data (the waves are not kept)."""
    n = _check_args(split, n, renditions_per_piece, clips_per_rendition, workers, seed)
    names = _collections(collections)
    renderer, sf = resolve_renderer(renderer, soundfont)
    key = _key(cfg, split, n, seed, names, renderer, sf, renditions_per_piece, clips_per_rendition)
    path = cache_root(cache_dir) / f"repertoire-{split}-{_hash(key)}.npz"
    kind = f"repertoire-{split}"

    def decode(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> RepertoireDataset:
        mels = torch.from_numpy(arrays.pop("mels"))
        info = json.loads(arrays.pop("info_json").tobytes())
        if list(mels.shape) != manifest["shape"] or mels.shape[1] != cfg.n_mels:
            raise ValueError(f"mels have shape {tuple(mels.shape)}, manifest {manifest['shape']}")
        stats = json.loads(_stats_path(path).read_text()) if _stats_path(path).is_file() else {}
        return RepertoireDataset(mels, _labels_from_arrays(arrays), info, cfg, kind,
                                 _summary_from_json(manifest["summary"]), path, True, stats)

    hit = _load_cache(path, key, decode) if use_cache else None
    if hit is not None:
        return hit
    out = _render(cfg, split, n, seed, names, renderer, sf, renditions_per_piece, clips_per_rendition,
                  workers, cache_dir, progress)
    t0 = time.perf_counter()
    chunks, waves = [], out.waves  # a list: converted 256 clips at a time, then let go
    for i in range(0, len(waves), 256):
        chunks.append(waves_to_mels(np.stack(waves[i: i + 256]), cfg))
        waves[i: i + 256] = [None] * len(waves[i: i + 256])
    mels = torch.cat(chunks)
    del chunks
    stats = {**out.stats, "mel_s": round(time.perf_counter() - t0, 3)}
    if use_cache:
        manifest = {"key": key, "kind": kind, "n": len(out.labels), "shape": list(mels.shape),
                    "summary": _summary_to_json(out.summary)}
        _save_cache(path, {"mels": mels.numpy(), "info_json": _json_bytes(out.info),
                           **_labels_to_arrays(out.labels)}, manifest)
        text = json.dumps(stats, indent=1).encode()
        _atomic_write(_stats_path(path), lambda f: f.write(text))
    return RepertoireDataset(mels, out.labels, out.info, cfg, kind, out.summary,
                             path if use_cache else None, False, stats)


def repertoire_sizes(data: DataConfig) -> dict[str, int]:
    """Clips per split: ``n_repertoire`` / ``n_repertoire_heldout`` / ``n_repertoire_evaluator``,
    each 0 meaning the procedural size (``n_train``, ``n_heldout``, and ``n_train`` for the
    evaluators, as :func:`~ditto2_nb.data.sources.evaluator_data`)."""
    train = getattr(data, "n_repertoire", 0) or data.n_train
    return {"train": train, "heldout": getattr(data, "n_repertoire_heldout", 0) or data.n_heldout,
            "evaluator": getattr(data, "n_repertoire_evaluator", 0) or train}


def _preset(preset: Preset | str) -> Preset:
    return get_preset(preset) if isinstance(preset, str) else preset


def repertoire_splits(preset: Preset | str, *, mel: MelConfig | None = None,
                      sizes: dict[str, int] | None = None, **kwargs: Any) -> dict[str, RepertoireDataset]:
    """The preset's three rendered splits ``{"train", "heldout", "evaluator"}`` (cached), from
    disjoint pieces. ``mel`` overrides the preset's MelConfig (e.g. 4-s clips), ``sizes`` the
    clip counts (default :func:`repertoire_sizes`); ``kwargs`` go to :func:`repertoire_dataset`."""
    p = _preset(preset)
    sizes = {**repertoire_sizes(p.data), **(sizes or {})}
    return {s: repertoire_dataset(mel or p.mel, s, sizes[s], seed=p.data.seed, **kwargs) for s in SPLITS}


def repertoire_training_data(preset: Preset | str, **kwargs: Any) -> RepertoireDataset:
    """The preset's rendered training clips (only this split is loaded or rendered)."""
    p = _preset(preset)
    return repertoire_dataset(p.mel, "train", repertoire_sizes(p.data)["train"], seed=p.data.seed, **kwargs)


def repertoire_heldout_data(preset: Preset | str, **kwargs: Any) -> RepertoireDataset:
    """Rendered held-out clips: pieces never in training."""
    p = _preset(preset)
    n = repertoire_sizes(p.data)["heldout"]
    return repertoire_dataset(p.mel, "heldout", n, seed=p.data.seed, **kwargs)


def repertoire_evaluator_data(preset: Preset | str, **kwargs: Any) -> RepertoireDataset:
    """Rendered clips for the evaluators only: pieces of their own."""
    p = _preset(preset)
    return repertoire_dataset(p.mel, "evaluator", repertoire_sizes(p.data)["evaluator"], seed=p.data.seed,
                              **kwargs)


# ----------------------------------------------------------------------------- the data card


def data_card(datasets: dict[str, RepertoireDataset], preset: str = "", cfg: MelConfig | None = None,
              ) -> dict[str, Any]:
    """Counts by collection, instrument, tempo...; hours; rendering time; and the split check
    (pieces, groups and melodies shared across splits: all 0 when the split is sound)."""
    cfg = cfg or next(iter(datasets.values())).cfg
    splits: dict[str, Any] = {}
    pieces: dict[str, set[str]] = {}
    groups: dict[str, set[str]] = {}
    prints: dict[str, set[str]] = {}
    renderer = None
    for name, ds in datasets.items():
        info, labels = ds.info, ds.labels
        pieces[name] = {x["piece"] for x in info}
        groups[name] = {x["group"] for x in info}
        prints[name] = {x["fingerprint"] for x in info}
        renderer = ds.summary.renderer if ds.summary is not None else renderer
        seconds = len(labels) * cfg.seconds
        by_coll: dict[str, dict[str, int]] = {}
        for x in info:
            d = by_coll.setdefault(x["collection"], {"clips": 0, "pieces": 0})
            d["clips"] += 1
        for c in by_coll:
            by_coll[c]["pieces"] = len({x["piece"] for x in info if x["collection"] == c})
        st = dict(ds.stats)
        audio = st.get("audio_s", 0.0)
        splits[name] = {
            "clips": len(labels), "pieces": len(pieces[name]),
            "instruments": sorted({i for x in info for i in x["instruments"]}),
            "melody_instruments": dict(sorted(Counter(x.instrument for x in labels).items())),
            "seconds": round(seconds, 2), "hours": round(seconds / 3600, 3),
            "by_collection": dict(sorted(by_coll.items())),
            "by_tag_instrument": dict(sorted(Counter(tag_values(x)["instrument"]
                                                     for x in labels).items())),
            "by_tempo": dict(sorted(Counter(x.tempo for x in labels).items())),
            "bpm": {"min": min(x.bpm for x in labels), "median": float(np.median([x.bpm for x in labels])),
                    "max": max(x.bpm for x in labels)},
            "by_mode": dict(sorted(Counter(x.mode for x in labels).items())),
            "by_dynamics": dict(sorted(Counter(x.dynamics for x in labels).items())),
            "by_accompaniment": dict(sorted(Counter(x["accompaniment"] for x in info).items())),
            "with_drums": sum(bool(x.has_drums) for x in labels),
            "voiced_frames": round(float(np.mean([np.mean(x.pitch > 0) for x in labels])), 3),
            "safety_gain_db_median": round(float(np.median([x.gain_db for x in labels])), 2),
            "pieces_failed": dict(ds.summary.failed) if ds.summary is not None else {},
            "silent_clips_dropped": ds.summary.n_silent_clips if ds.summary is not None else 0,
            "rendering": {"wall_s": st.get("wall_s"), "parse_s": st.get("parse_s"),
                          "synth_s": st.get("render_s"), "mel_s": st.get("mel_s"),
                          "audio_rendered_s": audio, "workers": st.get("workers"),
                          "synth_x_realtime": (round(audio / st["render_s"], 1) if st.get("render_s")
                                               else None),
                          "from_cache": bool(ds.from_cache)},
        }
    names = list(datasets)

    def shared(sets: dict[str, set[str]]) -> int:
        return sum(len(sets[a] & sets[b]) for i, a in enumerate(names) for b in names[i + 1:])

    walls = [s["rendering"]["wall_s"] for s in splits.values() if s["rendering"]["wall_s"]]
    return {
        "preset": preset, "source": "music21 corpus rendered by ditto2_nb.data.repertoire",
        "renderer": renderer, "mel": {"sample_rate": cfg.sample_rate, "hop_length": cfg.hop_length,
                                      "frames": cfg.frames, "clip_seconds": round(cfg.seconds, 4)},
        "versions": {"music21": _version("music21"), "pyfluidsynth": _version("pyfluidsynth"),
                     "libfluidsynth": _fluidsynth_version(), "repertoire": REPERTOIRE_VERSION,
                     "data": DATA_VERSION},
        "splits": splits,
        "pieces_shared_across_splits": shared(pieces),
        "groups_shared_across_splits": shared(groups),
        "melodies_shared_across_splits": shared(prints),
        "hours_total": round(sum(s["hours"] for s in splits.values()), 3),
        "rendering_wall_s_total": round(sum(walls), 1) if walls else None,
        "collections_available": collection_counts(),
    }


def write_data_card(card: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a data card as indented JSON (atomically)."""
    path = Path(path)
    text = (json.dumps(card, indent=1) + "\n").encode()
    _atomic_write(path, lambda f: f.write(text))
    return path


def render_preset(preset: Preset | str, *, frames: int | None = None, sizes: dict[str, int] | None = None,
                  **kwargs: Any) -> tuple[dict[str, RepertoireDataset], dict[str, Any]]:
    """Render (or load) the preset's three splits and make their data card; ``frames`` overrides
    the clip length (e.g. 256 for 4-s clips at hop 256 and 16 kHz)."""
    p = _preset(preset)
    mel = p.mel if frames is None else replace(p.mel, frames=frames)
    sets = repertoire_splits(p, mel=mel, sizes=sizes, **kwargs)
    return sets, data_card(sets, p.name, mel)
