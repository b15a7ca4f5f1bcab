"""The conditioning tags: a few labels per clip (instrument, tempo, mode, drums, dynamics), each an
index with 0 meaning "no tag", so one network can be conditional and unconditional.

The vocabulary only grows at the end of a field: ``instrument`` is the six procedural timbres
(indices 1-6, as the shipped models were trained) followed by the General MIDI families of the
rendered repertoire (:data:`~ditto2_nb.data.theory.INSTRUMENT_FAMILIES`, indices 7-14). A model
keeps the vocabulary it was trained with (``net.cfg.tag_vocab``, e.g. 7 instrument classes for
the shipped ones): :func:`model_tag_fields` gives its classes, and a tag beyond them is refused
with a message that names them (:func:`vocab_error`)."""

from __future__ import annotations

from functools import lru_cache

import torch

from ..core import validate as check
from .labels import ClipLabels
from .theory import DYNAMICS, GM_FAMILY, INSTRUMENT_FAMILIES, INSTRUMENTS, MODES, TEMPO_CLASSES

# The conditioning tags: field -> its classes (tag index = position + 1; 0 = "no tag"). Append only:
# a class once shipped keeps its index.
TAG_FIELDS: dict[str, tuple[str, ...]] = {
    "instrument": INSTRUMENTS + INSTRUMENT_FAMILIES,  # procedural timbres, then GM families
    "tempo": tuple(TEMPO_CLASSES),
    "mode": MODES,
    "drums": ("no drums", "drums"),
    "dynamics": DYNAMICS,
}


def tag_vocab() -> tuple[int, ...]:
    """Classes per tag field, each including index 0 = "no tag"."""
    return tuple(len(v) + 1 for v in TAG_FIELDS.values())


def model_tag_fields(vocab: tuple[int, ...]) -> dict[str, tuple[str, ...]]:
    """The classes a model with tag vocabulary ``vocab`` (``net.cfg.tag_vocab``) knows, per field:
    the first ``vocab[k] - 1`` classes of each field of :data:`TAG_FIELDS` (``(7, 4, 3, 3, 7)``, the
    shipped models: the six procedural timbres). Empty for an unconditional model."""
    vocab = tuple(int(n) for n in vocab)
    if vocab and len(vocab) != len(TAG_FIELDS):
        raise ValueError(f"a tag vocabulary of {len(vocab)} fields {vocab} is not one of "
                         f"{list(TAG_FIELDS)} ({len(TAG_FIELDS)} fields)")
    return {f: classes[: n - 1] for (f, classes), n in zip(TAG_FIELDS.items(), vocab)}


def vocab_error(name: str, t: torch.Tensor, vocab: tuple[int, ...]) -> str:
    """Why the class indices ``t`` ``[B, K]`` fall outside ``vocab``: the first offending field and
    index, the class that index means in today's :data:`TAG_FIELDS`, and the classes the model knows.
    """
    vocab = tuple(int(n) for n in vocab)
    head = f"{name} has class indices outside the vocabulary sizes {vocab} (0 = no tag)"
    bad = ((t < 0) | (t >= torch.tensor(vocab, device=t.device))).nonzero()
    if not len(bad):
        return head
    k, index = int(bad[0, 1]), int(t[bad[0, 0], bad[0, 1]])
    if len(vocab) != len(TAG_FIELDS):
        return f"{head}: field {k} has index {index}; the model's field {k} has {vocab[k]} classes"
    field_name = list(TAG_FIELDS)[k]
    today, known = TAG_FIELDS[field_name], model_tag_fields(vocab)[field_name]
    what = f" ({today[index - 1]!r})" if 1 <= index <= len(today) else ""
    msg = (f"{head}: {field_name} index {index}{what} is not in this model's vocabulary, which has "
           f"{field_name} classes 1-{len(known)} {known}")
    if what and index > len(known):
        msg += (f"; the model was trained before {list(today[len(known):])} were added to the tags: "
                f"give it one of its own classes (or 0 = no tag), or use a model trained with them")
    return msg


@lru_cache(maxsize=256)
def gm_family(name: str | None) -> str | None:
    """A General MIDI instrument name (``"Violin"``) -> its family tag (``"strings"``,
    :data:`~ditto2_nb.data.theory.GM_FAMILY`); None for a program no melody is drawn with."""
    import pretty_midi

    program = next((p for p in GM_FAMILY if pretty_midi.program_to_instrument_name(p) == name), None)
    return GM_FAMILY.get(program)


def instrument_tag(labels: ClipLabels) -> str | None:
    """The instrument as a tag names it: a procedural clip's timbre, or a rendered clip's melody
    program (``labels.instrument``, a General MIDI name) as its family (``"Violin"`` ->
    ``"strings"``, :func:`gm_family`); None when unknown."""
    if labels.genre == "procedural":
        return labels.instrument
    return gm_family(labels.instrument) if labels.instrument else None


def tag_values(labels: ClipLabels) -> dict[str, str | None]:
    """The five tag values of a clip: its labels, except that a rendered clip's instrument (its
    melody's GM program name in ``labels.instrument``) becomes that program's family
    (:func:`instrument_tag`)."""
    return {"instrument": instrument_tag(labels), "tempo": labels.tempo, "mode": labels.mode,
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


check.explain_tags = vocab_error  # the core layer's tag check names classes from here on
