"""Captions: the caption vocabulary (one place for every writer of captions) and the captions
built from a clip's labels alone.

* The vocabulary: label -> words, for the instrument, tempo, dynamics, drums and mode, plus nouns.
  The *first* word of each entry is the one :func:`caption`'s templates use; all of them are the
  MiniCLAP paraphraser's synonyms (:mod:`ditto2_nb.clap.paraphrase`). ``UNSEEN_*`` is held-out
  phrasing used only by the text benchmark; ``JUDGE_*`` is the independent evaluator's own
  attribute-list wording.
* :data:`TEMPLATES` / :func:`caption` / :func:`random_caption`: sentences from the labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .labels import ClipLabels
from .tags import instrument_tag

# Paraphrase vocabulary used in training. Values: label -> words (the first: the templates' word).
INSTRUMENT_WORDS = {"sine": ("sine-wave", "sine", "pure-tone", "flute-like", "smooth sine"),
                    "square": ("square-wave", "square", "chiptune", "hollow square-wave", "retro-game"),
                    "sawtooth": ("sawtooth", "saw-wave", "buzzy sawtooth", "bright buzzy",
                                 "brassy sawtooth"),
                    "triangle": ("triangle-wave", "triangle", "mellow triangle-wave",
                                 "rounded triangle-wave"),
                    "organ": ("organ", "electric organ", "organ-like", "drawbar organ", "pipe organ"),
                    "pluck": ("plucked-string", "plucked", "pizzicato", "guitar-like", "staccato plucked"),
                    # the GM families of rendered clips (TAG_FIELDS["instrument"] after the timbres;
                    # "organ" is shared): no word repeats one of a procedural timbre's
                    "piano": ("piano", "keyboard", "grand piano", "piano-like", "harpsichord-like"),
                    "mallets": ("mallet", "vibraphone", "marimba", "mallet-percussion", "struck-bar"),
                    "guitar & harp": ("guitar or harp", "guitar", "harp", "plucked guitar", "nylon-string"),
                    "strings": ("string", "bowed-string", "violin-like", "violin", "cello-like"),
                    "brass": ("brass", "trumpet", "horn", "brass-section", "trombone-like"),
                    "reeds": ("reed", "saxophone", "clarinet", "woodwind reed", "oboe-like"),
                    "flutes": ("flute", "recorder", "breathy flute", "pan-flute", "ocarina-like"),
                    "synth lead": ("synth-lead", "synth", "lead synth", "synthesizer lead",
                                   "electronic lead")}
TEMPO_WORDS = {"slow": ("slow", "slow-paced", "unhurried", "languid", "sluggish"),
               "medium": ("medium-tempo", "moderate-tempo", "mid-tempo", "medium-paced", "steady"),
               "fast": ("fast", "fast-paced", "quick", "speedy", "brisk", "up-tempo", "hurried")}
DYN_ADJ = {"loud": ("loud", "forceful", "strong", "intense"), "soft": ("soft", "quiet", "faint", "delicate"),
           "crescendo": ("building", "growing", "mounting", "intensifying"),
           "decrescendo": ("fading", "dying-away", "receding", "weakening"),
           "swell": ("swelling", "surging"), "sudden": ("abruptly rising", "suddenly louder")}
DYN_PHRASE = {"loud": ("loud throughout", "played loudly", "at full volume", "at a high volume"),
              "soft": ("soft throughout", "played quietly", "at a low volume", "played softly"),
              "crescendo": ("getting louder", "with a crescendo", "growing louder", "that builds in volume",
                            "increasing in volume"),
              "decrescendo": ("getting quieter", "with a decrescendo", "fading out", "decreasing in volume",
                              "that fades away"),
              "swell": ("rising then falling in volume", "that swells and fades", "with a swell in volume"),
              "sudden": ("with a sudden jump in volume", "that suddenly gets loud",
                         "quiet then suddenly loud", "with a sudden increase in loudness")}
DRUM_WORDS = {True: ("with drums", "with a drum beat", "with percussion", "with a drum groove",
                     "with kick, snare and hi-hat"),
              False: ("without drums", "with no drums", "without percussion", "with no beat",
                      "unaccompanied by drums")}
MODE_WORDS = {"major": ("in a major key", "in major", "in a major tonality"),
              "minor": ("in a minor key", "in minor", "in a minor tonality")}
NOUNS = ("melody", "tune", "piece", "track", "clip", "line", "song", "theme", "motif", "passage", "loop")

# Held-out phrasing for the benchmark only: words and sentence frames never seen in training.
UNSEEN_INST = {"sine": ("whistle-like sine",), "square": ("8-bit square",), "sawtooth": ("saw synth",),
               "triangle": ("triangle synth",), "organ": ("harmonium-like",), "pluck": ("harp-like",),
               "piano": ("upright piano",), "mallets": ("xylophone-like",), "guitar & harp": ("lute-like",),
               "strings": ("erhu-like",), "brass": ("cornet-like",), "reeds": ("bassoon-like",),
               "flutes": ("piccolo-like",), "synth lead": ("analog lead",)}
UNSEEN_TEMPO = {"slow": ("leisurely", "relaxed"), "medium": ("moderately paced", "walking-pace"),
                "fast": ("rapid", "lively")}
UNSEEN_DYN = {"loud": ("powerful", "booming"), "soft": ("gentle", "hushed"),
              "crescendo": ("rising in loudness",), "decrescendo": ("dying down", "diminishing"),
              "swell": ("louder in the middle",), "sudden": ("with an abrupt volume change",)}
UNSEEN_DRUMS = {True: ("featuring a drum kit", "over a beat"), False: ("drumless", "no percussion at all")}
UNSEEN_FRAMES = (
    "this is a {noun} that sounds {tempo} and {dyn}, played with {inst_a} timbre, {drums}, {key}",
    "{inst} music: {tempo}, {dyn}, {drums}, {key}",
    "{tempo} and {dyn} {noun} ({inst}), {drums}, {key}",
)

# The evaluator's own wording: attribute lists, never a sentence, so its caption pool shares no
# caption with MiniCLAP's (tested). Keys and class words per attribute.
JUDGE_KEYS = {"instrument": "timbre", "tempo": "tempo", "mode": "mode", "drums": "percussion",
              "dynamics": "dynamics"}
JUDGE_DRUMS = {True: ("yes", "drums"), False: ("no", "no drums")}  # (key-value form, list form)

TEMPLATES = (
    "a {tempo}, {dyn} {inst} melody in {key} {drums}",
    "{inst} lead in {key} at {bpm} bpm, {dyn_phrase}, {drums}",
    "{dyn} {tempo} tune in {key}, {inst} sound, {drums}",
    "{key} melody over {progression}: {tempo}, {inst}, {dyn_phrase}",
    "a {tempo} piece in {key} with {form} form, {inst} timbre, {dyn_phrase}, {drums}",
    "{drums_lead} {tempo} {inst} music in {key}, {dyn_phrase}",
)
# The same six sentence shapes for a rendered clip: its genre ("fiddle tune") where a procedural
# clip has its chords and form, and its instrument family's word.
RENDERED_TEMPLATES = (
    "a {tempo}, {dyn} {inst} {genre} in {key} {drums}",
    "{inst} {genre} in {key} at {bpm} bpm, {dyn_phrase}, {drums}",
    "{dyn} {tempo} {genre} in {key}, {inst} sound, {drums}",
    "{key} {genre}: {tempo}, {inst}, {dyn_phrase}",
    "a {tempo} {genre} in {key}, {inst} timbre, {dyn_phrase}, {drums}",
    "{drums_lead} {tempo} {inst} music in {key}, {dyn_phrase}",
)
N_CAPTION_TEMPLATES = len(TEMPLATES)
assert len(RENDERED_TEMPLATES) == N_CAPTION_TEMPLATES


def describable(lab: ClipLabels) -> bool:
    """Whether the labels give every tag and the key, so a caption can name them all: every
    procedural clip and every rendered repertoire clip (not a loaded recording)."""
    return (instrument_tag(lab) in INSTRUMENT_WORDS
            and None not in (lab.tempo, lab.mode, lab.tonic, lab.dynamics, lab.has_drums))


def _caption_words(lab: ClipLabels) -> dict[str, str]:
    words = {
        "tempo": TEMPO_WORDS[lab.tempo][0], "bpm": f"{lab.bpm:.0f}", "key": lab.key, "mode": lab.mode,
        "inst": INSTRUMENT_WORDS[instrument_tag(lab)][0],
        "dyn": DYN_ADJ[lab.dynamics][0], "dyn_phrase": DYN_PHRASE[lab.dynamics][0],
        "drums": DRUM_WORDS[bool(lab.has_drums)][0],
        "drums_lead": "drums and" if lab.has_drums else "no drums,",
    }
    if lab.genre != "procedural":
        return {**words, "genre": lab.genre}
    first = lab.sections[0].onset + lab.sections[0].duration if lab.sections else math.inf
    numerals = [c.numeral for c in lab.chords if c.onset < first - 1e-9] or ["I"]
    chords = ("the chords " if len(numerals) > 1 else "the chord ") + "-".join(numerals)
    return {**words, "progression": chords, "form": lab.structure}


def _generic_caption(lab: ClipLabels, template: int) -> str:
    """Captions for sources without the full procedural label set (corpus, recordings)."""
    tempo = f"{lab.tempo} " if lab.tempo else ""
    what = f"a {tempo}{lab.genre}"
    parts = [what + (f" in {lab.key}" if lab.key else "")]
    if lab.instrument:
        parts.append(f"played on {lab.instrument}")
    if lab.bpm and template % 2:
        parts.append(f"about {lab.bpm:.0f} bpm")
    if lab.genre == "recording":
        parts.append(f"from {Path(lab.source).stem}")
    return ", ".join(parts) if template % 3 else " ".join(parts)


def caption(labels: ClipLabels, template: int = 0) -> str:
    """A text description built only from the labels; ``template`` in ``[0, N_CAPTION_TEMPLATES)``.

    Template 0 reads like "a fast, loud square-wave melody in A minor with drums" (a rendered
    clip: "a medium-tempo, loud string fiddle tune in D major without drums", its instrument
    family's word); the others are paraphrases (for text-audio training pick one per example with
    :func:`random_caption`). Labels without every tag (a loaded recording) get a shorter caption
    from what they have.
    """
    if not 0 <= template < N_CAPTION_TEMPLATES:
        raise ValueError(f"template must be in [0, {N_CAPTION_TEMPLATES}), got {template}")
    if not describable(labels):
        return _generic_caption(labels, template)
    return caption_templates(labels)[template].format(**_caption_words(labels))


def caption_templates(labels: ClipLabels) -> tuple[str, ...]:
    """The sentence shapes :func:`caption` fills for these labels (procedural or rendered)."""
    return TEMPLATES if labels.genre == "procedural" else RENDERED_TEMPLATES


def random_caption(labels: ClipLabels, rng: np.random.Generator) -> str:
    """A caption with a template drawn from ``rng``."""
    return caption(labels, int(rng.integers(N_CAPTION_TEMPLATES)))
