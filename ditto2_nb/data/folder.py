"""Your own audio as training data: every file of a folder (wav/flac/ogg/mp3) cut into clips; bad
files are skipped and counted, never fatal; the cache key follows each file's size and time."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.files import load_audio, rms_db
from ..core.config import MelConfig, to_dict
from .cache import DATA_VERSION
from .datasets import MelDataset, _cached_dataset, waves_to_mels
from .labels import ClipLabels
from .summaries import DataError, FolderSummary

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


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
            wave = load_audio(path, sr).numpy()
        except Exception as e:  # noqa: BLE001 - AudioError, decoder errors...: skip the file
            detail = str(e).replace(str(path), path.name)  # the key already names the file
            summary.skipped[name] = ("unreadable", f"{type(e).__name__}: {detail}"[:160])
            continue
        level = rms_db(torch.from_numpy(wave))
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
            if rms_db(torch.from_numpy(clip)) < silence_db:
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
