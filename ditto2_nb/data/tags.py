"""The conditioning tags: a few labels per clip (instrument, tempo, mode, drums, dynamics), each an
index with 0 meaning "no tag", so one network can be conditional and unconditional."""

from __future__ import annotations

import torch

from .labels import ClipLabels
from .theory import DYNAMICS, INSTRUMENTS, MODES, TEMPO_CLASSES

# The conditioning tags: field -> its classes (tag index = position + 1; 0 = "no tag").
TAG_FIELDS: dict[str, tuple[str, ...]] = {
    "instrument": INSTRUMENTS,
    "tempo": tuple(TEMPO_CLASSES),
    "mode": MODES,
    "drums": ("no drums", "drums"),
    "dynamics": DYNAMICS,
}


def tag_vocab() -> tuple[int, ...]:
    """Classes per tag field, each including index 0 = "no tag"."""
    return tuple(len(v) + 1 for v in TAG_FIELDS.values())


def tag_values(labels: ClipLabels) -> dict[str, str]:
    return {"instrument": labels.instrument, "tempo": labels.tempo, "mode": labels.mode,
            "drums": "drums" if labels.has_drums else "no drums", "dynamics": labels.dynamics}


def encode_tags(values: dict[str, str | None]) -> torch.Tensor:
    """``{"instrument": "square", ...}`` -> long ``[n_tags]``; a missing field or None is 0 (no tag)."""
    unknown = set(values) - set(TAG_FIELDS)
    if unknown:
        raise ValueError(f"unknown tag field(s) {sorted(unknown)}; fields are {list(TAG_FIELDS)}")
    out = []
    for field_name, classes in TAG_FIELDS.items():
        v = values.get(field_name)
        if v is not None and v not in classes:
            raise ValueError(f"{field_name}={v!r} is not one of {classes}")
        out.append(0 if v is None else classes.index(v) + 1)
    return torch.tensor(out, dtype=torch.long)


def tags_tensor(labels: list[ClipLabels]) -> torch.Tensor:
    """Tags of labelled clips, ``[N, n_tags]``."""
    return torch.stack([encode_tags(tag_values(x)) for x in labels])
