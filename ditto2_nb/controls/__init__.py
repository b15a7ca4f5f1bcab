"""Controls for inference-time noise optimisation: a differentiable feature, a target, a loss.

A control ``c`` (see :class:`Control`) turns a generated normalised mel ``[B, n_mels, frames]`` into

* ``c.feature(mel)``  -- the differentiable feature ``f(x_0)`` (shape depends on the control);
* ``c.loss(mel)``     -- the per-example loss ``L(f(x_0), y)`` ``[B]`` (sum it to optimise a batch in
  which every example may have its own target);
* ``c.evaluate(wave)`` -- the *same property measured on decoded audio* ``[B, L]`` with librosa (not
  differentiable, not the loss): ``{metric: [one float per example]}``;
* ``c.describe()``    -- one readable line.

Targets are ``[frames]``-shaped (shared by the batch) or ``[B, frames]``-shaped (one per example); a target
batch of 1 broadcasts. The controls of the paper:

============  ===============================================  ================================
control       feature ``f`` on the mel                         target ``y`` / loss
============  ===============================================  ================================
intensity     frame energy (dB) smoothed over ~1 s ``[B, frames]``  dB curve; MSE (dB^2)
melody        12-bin chroma, softmax per frame ``[B, 12, frames]``  pitch class per frame; cross-entropy
structure     self-similarity of pooled spectra ``[B, segments, segments]``  block matrix from "ABA", or a
                                                               reference clip's own SSM; MSE
inpainting    the mel outside a gap                            reference mel; masked MSE
outpainting   the first ``o`` frames                           last ``o`` frames of a reference
looping       last ``o`` frames minus first ``o`` frames       zero; MSE (gradients flow both ways)
composite     every term's feature                             weighted sum of the terms' losses
============  ===============================================  ================================

Modules: :mod:`.base` (the interface), :mod:`.intensity`, :mod:`.melody`, :mod:`.structure`,
:mod:`.masks` (in/outpainting, looping) and :mod:`.composite`; the text control lives with its
scorers in :mod:`ditto2_nb.clap`. The two plain features :func:`intensity` and :func:`chroma` are
also used by the distillation benchmark (trajectory consistency).
"""


from ..audio.analysis import MIDDLE_C_HZ
from .base import Control
from .composite import CompositeControl, composite
from .intensity import (
    INTENSITY_SHAPES,
    IntensityControl,
    frame_energy_db,
    from_points,
    intensity,
    intensity_control,
    intensity_target,
)
from .masks import LoopControl, MaskedMelControl, continuity, inpaint_control, loop_control, outpaint_control
from .melody import (
    MelodyControl,
    TypedMelody,
    chroma,
    chroma_agreement,
    chroma_matrix,
    mel_centre_hz,
    melody_control,
    melody_from_audio,
    melody_from_text,
    pitch_classes_from_mel,
)
from .structure import (
    StructureControl,
    self_similarity,
    structure_control,
    structure_from_reference,
    structure_target,
)

__all__ = ["INTENSITY_SHAPES", "MIDDLE_C_HZ", "CompositeControl", "Control", "IntensityControl",
           "LoopControl", "MaskedMelControl", "MelodyControl", "StructureControl", "chroma",
           "chroma_agreement", "chroma_matrix", "composite", "continuity", "frame_energy_db", "from_points",
           "inpaint_control", "intensity", "intensity_control", "intensity_target", "loop_control",
           "mel_centre_hz", "melody_control", "melody_from_audio", "melody_from_text", "TypedMelody",
           "outpaint_control",
           "pitch_classes_from_mel",
           "self_similarity", "structure_control", "structure_from_reference", "structure_target"]
