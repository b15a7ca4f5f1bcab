"""Training data with exact labels: procedural music, a rendered symbolic corpus, your own audio.

Three sources, one label type (:class:`ClipLabels`) and one dataset type (:class:`MelDataset`):

1. **Procedural music** (the default): clip ``k`` of a dataset with base seed ``s`` is fully
   determined by ``numpy.random.default_rng(s + k)`` -- :mod:`.theory` (keys, scales, forms),
   :mod:`.composition` (the score), :mod:`.synthesis` (the audio). Every label is *true*: it is
   the exact score the synthesiser played.
2. **A symbolic corpus** (:mod:`.corpus`): music21's Bach chorales or Essen folk songs, rendered;
   and **the rendered repertoire** (:mod:`.repertoire`): ~13,000 tunes and chorales of music21's
   corpus performed with FluidSynth (instrument, accompaniment, key, tempo, dynamics, drums drawn
   per clip), exact labels from the scores, train / held-out / evaluator splits by piece; built
   from :mod:`.scores` (catalogue, splits, parsing), :mod:`.arranging` (the drawn performance),
   :mod:`.rendering` (FluidSynth, the additive fallback) and :mod:`.renditions` (labelled clips).
3. **A folder of audio files** (:mod:`.folder`), cut into clips; bad files are skipped and counted.

Around them: :mod:`.labels` (:class:`ClipLabels`), :mod:`.captions` (the caption vocabulary and
captions from labels), :mod:`.tags` (the conditioning tags), :mod:`.cache` (the on-disk cache),
:mod:`.summaries` (what building a dataset did) and :mod:`.datasets` (:class:`MelDataset`, the
procedural datasets and the train / held-out / evaluator seed ranges).
"""

from .cache import DATA_VERSION, cache_root
from .captions import N_CAPTION_TEMPLATES, TEMPLATES, caption, random_caption
from .composition import compose_clip
from .corpus import (
    CorpusClips,
    chorale_dataset,
    corpus_pieces,
    fluidsynth_available,
    render_corpus,
    soundfont_path,
)
from .datasets import (
    EVALUATOR_SEED_OFFSET,
    HELDOUT_SEED_OFFSET,
    MelDataset,
    procedural_dataset,
    procedural_splits,
    waves_to_mels,
)
from .folder import AUDIO_EXTENSIONS, folder_dataset, load_audio_folder
from .labels import Chord, ClipLabels, Note, Section
from .repertoire import (
    COLLECTIONS,
    SPLITS,
    RepertoireClips,
    RepertoireDataset,
    data_card,
    piece_split,
    render_piece,
    render_preset,
    render_repertoire,
    repertoire_caption,
    repertoire_dataset,
    repertoire_evaluator_data,
    repertoire_heldout_data,
    repertoire_pieces,
    repertoire_sizes,
    repertoire_splits,
    repertoire_training_data,
    split_pieces,
)
from .sources import evaluator_data, heldout_data, training_data, training_record
from .summaries import DataError, FolderSummary, RenderSummary
from .synthesis import PEAK_LIMIT, generate_clips, synthesize_clip
from .tags import TAG_FIELDS, encode_tags, model_tag_fields, tag_values, tag_vocab, tags_tensor
from .theory import (
    DRUM_PATTERNS,
    DYNAMICS,
    GM_FAMILY,
    INSTRUMENT_FAMILIES,
    INSTRUMENTS,
    MELODY_RANGE,
    MODES,
    NOTE_NAMES,
    SCALES,
    STRUCTURES,
    TEMPO_CLASSES,
    key_name,
    midi_to_hz,
    tempo_class,
)

__all__ = [
    "AUDIO_EXTENSIONS", "DATA_VERSION", "DRUM_PATTERNS", "DYNAMICS", "EVALUATOR_SEED_OFFSET", "GM_FAMILY",
    "HELDOUT_SEED_OFFSET", "INSTRUMENTS", "INSTRUMENT_FAMILIES", "MELODY_RANGE", "MODES", "NOTE_NAMES",
    "N_CAPTION_TEMPLATES", "PEAK_LIMIT", "SCALES", "STRUCTURES", "TAG_FIELDS", "TEMPLATES", "TEMPO_CLASSES",
    "Chord", "ClipLabels", "CorpusClips", "DataError", "FolderSummary", "MelDataset", "Note",
    "RenderSummary", "Section", "cache_root", "caption", "chorale_dataset", "compose_clip",
    "corpus_pieces", "encode_tags", "evaluator_data", "fluidsynth_available", "folder_dataset",
    "generate_clips", "heldout_data", "key_name", "load_audio_folder", "midi_to_hz", "model_tag_fields",
    "procedural_dataset", "procedural_splits", "random_caption", "render_corpus", "soundfont_path",
    "synthesize_clip", "tag_values", "tag_vocab", "tags_tensor", "tempo_class", "training_data",
    "training_record",
    "waves_to_mels",
    # the rendered repertoire (ditto2_nb.data.repertoire)
    "COLLECTIONS", "SPLITS", "RepertoireClips", "RepertoireDataset", "data_card", "piece_split",
    "render_piece", "render_preset", "render_repertoire", "repertoire_caption", "repertoire_dataset",
    "repertoire_evaluator_data", "repertoire_heldout_data", "repertoire_pieces", "repertoire_sizes",
    "repertoire_splits", "repertoire_training_data",
    "split_pieces",
]
