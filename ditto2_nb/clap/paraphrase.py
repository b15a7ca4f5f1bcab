"""The caption paraphraser: captions of labelled clips (procedural or rendered) for contrastive
training, each with a mention mask of the label fields it names, and the prompts for zero-shot
classification.

* MiniCLAP's wording (:func:`clap_caption`): :func:`ditto2_nb.data.caption`'s templates or a
  compositional paraphrase with synonyms; ``"unseen"`` phrasing for the benchmark;
* the evaluator's own attribute-list wording (:func:`judge_caption`), sharing no caption;
* :func:`match_matrix`: which clips a caption describes, from the masks (several positives).

The words themselves live in :mod:`ditto2_nb.data.captions`; every class of
:data:`ditto2_nb.data.TAG_FIELDS` has them, the GM instrument families of rendered clips included.
A rendered clip is named by its instrument family's words or by its own program's name ("a violin
tune" for a strings clip played on the violin). The instrument classes a scorer learns (and is
asked about zero-shot, :func:`scorer_classes`) are those of the data it trained on: the six
procedural timbres, the GM families of the repertoire, or both.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from ..data.captions import (
    DRUM_WORDS,
    DYN_ADJ,
    DYN_PHRASE,
    INSTRUMENT_WORDS,
    JUDGE_DRUMS,
    JUDGE_KEYS,
    MODE_WORDS,
    N_CAPTION_TEMPLATES,
    NOUNS,
    TEMPLATES,
    TEMPO_WORDS,
    UNSEEN_DRUMS,
    UNSEEN_DYN,
    UNSEEN_FRAMES,
    UNSEEN_INST,
    UNSEEN_TEMPO,
    caption,
    caption_templates,
    describable,
)
from ..data.labels import ClipLabels
from ..data.renditions import spoken_name
from ..data.tags import TAG_FIELDS, instrument_tag
from ..data.theory import DYNAMICS, INSTRUMENT_FAMILIES, INSTRUMENTS, MODES, STRUCTURES, TEMPO_CLASSES

FIELDS = ("instrument", "tempo", "mode", "drums", "dynamics", "tonic", "structure")
UNIQUE = len(FIELDS)
ATTRIBUTES = ("instrument", "tempo", "mode", "drums", "dynamics")  # zero-shot attributes (tags)

def _a(phrase: str) -> str:
    """``"a"`` or ``"an"`` before ``phrase`` (by its first letter; enough for this vocabulary)."""
    return ("an " if phrase[:1].lower() in "aeiou8" else "a ") + phrase


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _mask(*names: str, unique: bool = False) -> np.ndarray:
    m = np.zeros(UNIQUE + 1, dtype=bool)
    for n in names:
        m[FIELDS.index(n)] = True
    m[UNIQUE] = unique
    return m


_PLACEHOLDER_FIELDS = {"tempo": ("tempo",), "key": ("mode", "tonic"), "mode": ("mode",),
                       "inst": ("instrument",), "dyn": ("dynamics",), "dyn_phrase": ("dynamics",),
                       "drums": ("drums",), "drums_lead": ("drums",), "form": ("structure",),
                       "genre": ()}  # a rendered clip's genre ("fiddle tune") is named but not matched


@lru_cache(maxsize=2)
def _data_template_masks(templates: tuple[str, ...] = TEMPLATES) -> tuple[np.ndarray, ...]:
    """Mention masks of :func:`ditto2_nb.data.caption`'s templates, read from their placeholders."""
    out = []
    for tpl in templates:
        names = {f for _, f, _, _ in string.Formatter().parse(tpl) if f}
        fields = [x for n in names for x in _PLACEHOLDER_FIELDS.get(n, ())]
        out.append(_mask(*fields, unique=bool(names - set(_PLACEHOLDER_FIELDS))))  # bpm, progression
    return tuple(out)


def _paraphrase(lab: ClipLabels, rng: np.random.Generator, keep: Sequence[str]) -> str:
    """A caption mentioning exactly the fields in ``keep`` with training words and frames."""
    adjs, posts = [], []
    if "tempo" in keep:
        adjs.append(_pick(rng, TEMPO_WORDS[lab.tempo]))
    if "dynamics" in keep:
        if rng.random() < 0.5:
            adjs.append(_pick(rng, DYN_ADJ[lab.dynamics]))
        else:
            posts.append(_pick(rng, DYN_PHRASE[lab.dynamics]))
    if "tonic" in keep:
        posts.append(f"in {lab.key}" if rng.random() < 0.7 else f"in the key of {lab.key}")
    elif "mode" in keep:
        posts.append(_pick(rng, MODE_WORDS[lab.mode]))
    if "drums" in keep:
        posts.append(_pick(rng, DRUM_WORDS[bool(lab.has_drums)]))
    rng.shuffle(adjs)
    rng.shuffle(posts)
    inst = _pick(rng, _instrument_words(lab)) if "instrument" in keep else ""
    noun = _pick(rng, NOUNS)
    frame = int(rng.integers(3))
    head = " ".join(x for x in (", ".join(adjs), inst, noun) if x)
    if frame == 0:
        text = _a(head) + " " + " ".join(posts)
    elif frame == 1:
        text = ", ".join([head] + posts)
    else:
        text = ", ".join([" ".join(x for x in (inst, noun) if x)] + adjs + posts)
    return " ".join(text.split())


def _instrument_words(lab: ClipLabels) -> tuple[str, ...]:
    """Words for the clip's instrument: its tag's (:data:`INSTRUMENT_WORDS`), and for a rendered
    clip also its program's spoken name ("violin" in the strings family)."""
    words = INSTRUMENT_WORDS[instrument_tag(lab)]
    return words if lab.genre == "procedural" else words + (spoken_name(lab.instrument),)


def _require_describable(lab: ClipLabels, who: str) -> None:
    if not describable(lab):
        raise ValueError(f"{who} needs labels with every tag and the key (a procedural or rendered "
                         f"repertoire clip); got genre {lab.genre!r}, instrument {lab.instrument!r}, "
                         f"tempo {lab.tempo!r}, key {lab.key!r}, dynamics {lab.dynamics!r}, "
                         f"drums {lab.has_drums!r}")


def clap_caption(lab: ClipLabels, rng: np.random.Generator, style: str = "train",
                 p_data: float = 0.35) -> tuple[str, np.ndarray]:
    """One caption of a labelled clip and its mention mask ``[len(FIELDS) + 1]`` (bool).

    Styles:

    * ``"train"``: with probability ``p_data`` one of :func:`ditto2_nb.data.caption`'s templates,
      else a paraphrase naming a random subset of the attributes (each kept with probability 0.6,
      at least one) with synonyms and one of three sentence frames.
    * ``"full"``: a training-style paraphrase naming all five attributes and the key.
    * ``"unseen"``: all attributes and the key, with words and sentence frames never used in
      training (held-out phrasing for the benchmark).

    The mask says which label fields the text pins down, so a batch can tell true negatives from
    clips that the caption describes just as well (see :func:`contrastive_loss`).
    """
    _require_describable(lab, "clap_caption")
    if style == "train" and rng.random() < p_data:
        t = int(rng.integers(N_CAPTION_TEMPLATES))
        return caption(lab, t), _data_template_masks(caption_templates(lab))[t].copy()
    if style == "train":
        names = [f for f in ("instrument", "tempo", "mode", "drums", "dynamics") if rng.random() < 0.6]
        names = names or [_pick(rng, ("instrument", "tempo", "mode", "drums", "dynamics"))]
        if "mode" in names and rng.random() < 0.5:
            names.append("tonic")
        return _paraphrase(lab, rng, names), _mask(*names)
    full = ("instrument", "tempo", "mode", "drums", "dynamics", "tonic")
    if style == "full":
        return _paraphrase(lab, rng, full), _mask(*full)
    if style == "unseen":
        words = {"noun": _pick(rng, ("recording", "composition", "phrase")),
                 "inst": _pick(rng, UNSEEN_INST[instrument_tag(lab)]),
                 "tempo": _pick(rng, UNSEEN_TEMPO[lab.tempo]),
                 "dyn": _pick(rng, UNSEEN_DYN[lab.dynamics]),
                 "drums": _pick(rng, UNSEEN_DRUMS[bool(lab.has_drums)]), "key": f"key of {lab.key}"}
        words["inst_a"] = _a(words["inst"])
        return _pick(rng, UNSEEN_FRAMES).format(**words), _mask(*full)
    raise ValueError(f"unknown caption style {style!r}; choose 'train', 'full' or 'unseen'")


def caption_pool(labels: Sequence[ClipLabels], per_clip: int, seed: int = 0,
                 style: str = "train") -> tuple[list[str], np.ndarray]:
    """``per_clip`` captions per clip (clip ``i`` draws from its own generator ``(seed, i)``).

    Returns the captions as a flat list (clip-major, ``N * per_clip``) and their mention masks
    ``[N, per_clip, len(FIELDS) + 1]``.
    """
    texts, masks = [], []
    for i, lab in enumerate(labels):
        rng = np.random.default_rng([seed, i])
        for _ in range(per_clip):
            t, m = clap_caption(lab, rng, style)
            texts.append(t)
            masks.append(m)
    return texts, np.stack(masks).reshape(len(labels), per_clip, -1)


def field_values(labels: Sequence[ClipLabels]) -> torch.Tensor:
    """Label values per clip as integers ``[N, len(FIELDS)]`` (for matching captions to clips; the
    instrument as its tag, :func:`~ditto2_nb.data.tags.instrument_tag`)."""
    rows = []
    for lab in labels:
        rows.append([TAG_FIELDS["instrument"].index(instrument_tag(lab)),
                     list(TEMPO_CLASSES).index(lab.tempo),
                     MODES.index(lab.mode), int(bool(lab.has_drums)), DYNAMICS.index(lab.dynamics),
                     int(lab.tonic), STRUCTURES.index(lab.structure) if lab.structure in STRUCTURES
                     else -1])
    return torch.tensor(rows, dtype=torch.long)


INSTRUMENT_CLASSES = {"procedural": INSTRUMENTS, "repertoire": INSTRUMENT_FAMILIES,
                      "mixed": INSTRUMENTS + INSTRUMENT_FAMILIES}  # by the data a scorer learned from


def scorer_classes(attribute: str, data: str = "procedural") -> tuple[str, ...]:
    """The classes of a tag attribute that a scorer trained on ``data`` (a preset's
    ``data.source``: "procedural", "repertoire" or "mixed") learns from its captions: every class of
    :data:`~ditto2_nb.data.TAG_FIELDS`, except that the instrument's are only those its clips have
    (the six timbres, the GM families, or both)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {ATTRIBUTES}")
    if data not in INSTRUMENT_CLASSES:
        raise ValueError(f"data must be one of {list(INSTRUMENT_CLASSES)}, got {data!r}")
    return INSTRUMENT_CLASSES[data] if attribute == "instrument" else TAG_FIELDS[attribute]


def _classes(attribute: str, classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return scorer_classes(attribute)
    classes, known = tuple(classes), TAG_FIELDS[attribute]
    unknown = [c for c in classes if c not in known]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes {list(classes)} for {attribute!r}: give two or more distinct "
                         f"classes of {list(known)}")
    return classes


def attribute_prompts(attribute: str, classes: Sequence[str] | None = None) -> dict[str, str]:
    """One prompt per class of a tag attribute (zero-shot classification): class -> prompt.

    ``classes``: which classes of :data:`ditto2_nb.data.TAG_FIELDS` (default :func:`scorer_classes`,
    the ones MiniCLAP learns; ``TAG_FIELDS["instrument"]`` adds the GM families). E.g.
    ``attribute_prompts("tempo")`` is ``{"slow": "a slow melody", "medium": "a medium-tempo
    melody", "fast": "a fast melody"}``.
    """
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {ATTRIBUTES}")
    classes = _classes(attribute, classes)
    if attribute == "instrument":
        return {c: _a(f"{INSTRUMENT_WORDS[c][0]} melody") for c in classes}
    if attribute == "tempo":
        return {c: _a(f"{TEMPO_WORDS[c][0]} melody") for c in classes}
    if attribute == "mode":
        return {c: f"a melody {MODE_WORDS[c][0]}" for c in classes}
    if attribute == "drums":
        return {c: f"a melody {DRUM_WORDS[c == 'drums'][0]}" for c in classes}
    return {c: f"a melody {DYN_PHRASE[c][0]}" for c in classes}


def _judge_value(lab: ClipLabels, attr: str, listed: bool, tonic: bool) -> str:
    if attr == "drums":
        return JUDGE_DRUMS[bool(lab.has_drums)][int(listed)]
    if attr == "mode" and tonic:
        return lab.key.lower()
    if attr == "instrument":
        return instrument_tag(lab)
    return str(getattr(lab, attr)).lower()


def judge_caption(lab: ClipLabels, rng: np.random.Generator | None = None) -> tuple[str, np.ndarray]:
    """A caption in the evaluator's own wording and its mention mask (as :func:`clap_caption`).

    ``rng=None`` gives the full, fixed form used to score a prompt's labels:
    ``"timbre: organ; tempo: fast; mode: d minor; percussion: yes; dynamics: crescendo"``. With a
    generator (training), each attribute is kept with probability 0.6 (at least one), in random
    order, as ``key: value`` pairs, a ``|``-separated list or ``tags: a, b, c``.
    """
    _require_describable(lab, "judge_caption")
    attrs = list(ATTRIBUTES)
    if rng is None:
        keep, frame, tonic = attrs, 0, True
    else:
        keep = [a for a in attrs if rng.random() < 0.6] or [_pick(rng, attrs)]
        rng.shuffle(keep)
        frame, tonic = int(rng.integers(3)), bool(rng.random() < 0.5)
    vals = [_judge_value(lab, a, frame > 0, tonic) for a in keep]
    if frame == 0:
        text = "; ".join(f"{JUDGE_KEYS[a]}: {v}" for a, v in zip(keep, vals))
    else:
        text = " | ".join(vals) if frame == 1 else "tags: " + ", ".join(vals)
    names = list(keep) + (["tonic"] if tonic and "mode" in keep else [])
    return text, _mask(*names)


def judge_caption_pool(labels: Sequence[ClipLabels], per_clip: int,
                       seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``per_clip`` evaluator captions per clip (as :func:`caption_pool`)."""
    texts, masks = [], []
    for i, lab in enumerate(labels):
        rng = np.random.default_rng([seed, 7, i])
        for _ in range(per_clip):
            t, m = judge_caption(lab, rng)
            texts.append(t)
            masks.append(m)
    return texts, np.stack(masks).reshape(len(labels), per_clip, -1)


def judge_class_prompts(attribute: str, classes: Sequence[str] | None = None) -> dict[str, str]:
    """Zero-shot prompts in the evaluator's wording: class -> ``"tempo: fast"`` (``classes`` as in
    :func:`attribute_prompts`)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; choose one of {ATTRIBUTES}")
    classes = _classes(attribute, classes)
    if attribute == "drums":
        return {c: f"percussion: {JUDGE_DRUMS[c == 'drums'][0]}" for c in classes}
    return {c: f"{JUDGE_KEYS[attribute]}: {c}" for c in classes}


def match_matrix(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``[B, B]`` bool: clip ``i`` has every label value that caption ``j`` (of clip ``j``) names.

    values ``[B, fields]`` label integers of the clips; masks ``[B, fields + 1]`` mention masks of the
    captions.
    """
    same = values[:, None, :] == values[None, :, :]  # [B i, B j, fields]
    ok = (same | ~masks[None, :, :UNIQUE]).all(-1)  # fields the caption does not name are free
    eye = torch.eye(len(values), dtype=torch.bool, device=values.device)
    return (ok & (~masks[None, :, UNIQUE] | eye)) | eye
