"""Which clips a preset's models train and are judged on (``DataConfig.source``): the procedural
generator, the rendered repertoire, or both; and the record a model keeps of its training data."""

from __future__ import annotations

import hashlib

import numpy as np

from ..core.config import Preset
from .datasets import EVALUATOR_SEED_OFFSET, HELDOUT_SEED_OFFSET, MelDataset, procedural_dataset
from .repertoire import repertoire_evaluator_data, repertoire_heldout_data, repertoire_training_data


def training_data(preset: Preset) -> MelDataset:
    """The preset's training clips, by ``data.source``: procedural (seeds ``data.seed ...``), the
    rendered repertoire's training pieces, or both ("mixed", procedural first); loads only this
    split's cache."""
    source = preset.data.source
    if source == "procedural":
        return procedural_dataset(preset.mel, preset.data.n_train, preset.data.seed)
    rendered = repertoire_training_data(preset)
    if source == "repertoire":
        return rendered
    return procedural_dataset(preset.mel, preset.data.n_train, preset.data.seed) + rendered


SOURCE_WORDS = {"procedural": "procedural", "repertoire": "rendered repertoire",
                "mixed": "rendered repertoire + procedural"}


def training_record(preset: Preset, ds: MelDataset) -> dict[str, str]:
    """What a model trained on: ``{"training_data": words, "training_data_sha256": first 16 hex
    digits of the mels' bytes}``, for its metadata and card (the same clips give the same hash)."""
    n_rendered = sum(lab.genre != "procedural" for lab in ds.labels)
    parts = []
    if n_rendered:
        pieces = len({lab.source for lab in ds.labels if lab.genre != "procedural"})
        parts.append(f"{n_rendered} rendered repertoire clips ({pieces} pieces)")
    if len(ds) - n_rendered:  # its seed range: the training clips', or the evaluators' own
        first = next(lab.seed for lab in ds.labels if lab.genre == "procedural")
        parts.append(f"{len(ds) - n_rendered} procedural clips (seeds from {first})")
    words = " + ".join(parts) + f", {preset.mel.frames} frames of {preset.mel.n_mels} mels"
    digest = hashlib.sha256(ds.mels.numpy().astype(np.float32).tobytes()).hexdigest()[:16]
    return {"training_data": f"{SOURCE_WORDS[preset.data.source]}: {words}", "training_data_sha256": digest}


def heldout_data(preset: Preset) -> MelDataset:
    """Held-out clips, never trained on: the procedural held-out seed range
    (:func:`procedural_splits`), or for a preset that trains on the repertoire ("repertoire" or
    "mixed"), clips of held-out pieces."""
    if preset.data.source == "procedural":
        return procedural_dataset(preset.mel, preset.data.n_heldout,
                                  preset.data.seed + HELDOUT_SEED_OFFSET)
    return repertoire_heldout_data(preset)


def evaluator_data(preset: Preset) -> MelDataset:
    """Clips for the evaluators only (the independent text scorer and its attribute judge): their
    own seed range, or pieces of their own for a preset on the repertoire, disjoint from training
    and held-out, so no evaluator saw a clip the losses were trained on."""
    if preset.data.source == "procedural":
        return procedural_dataset(preset.mel, preset.data.n_train,
                                  preset.data.seed + EVALUATOR_SEED_OFFSET)
    return repertoire_evaluator_data(preset)
