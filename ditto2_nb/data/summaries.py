"""What building a dataset did: the error for sources that yield nothing, and the summaries of a
rendered corpus and of an audio folder (kept in the cache manifest, restored with the data)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any


class DataError(ValueError):
    """Raised when a data source yields nothing usable (empty folder, no readable files...)."""


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
