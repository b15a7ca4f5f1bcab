"""Checks for the tutorial exercises (``tutorials/``): say in plain words what is wrong.

Each ``check_*`` function takes the student's function, runs it and the library's reference on
**fresh random inputs** (a new draw on every call, so an answer hard-coded for the notebook's data
cannot pass), and either prints one line starting with ``✓`` or raises :class:`TutorError` whose
message names the problem: not written yet, returned None, wrong shape (expected vs got), wrong
sign, off by a constant factor, a missing term, no gradient, ... A tutorial calls a check in the
cell right after each exercise::

    from ditto2_nb.notebook import tutor
    tutor.check_mel_filterbank(my_mel_filterbank)

Checks draw from their own generators and build their small models inside
``torch.random.fork_rng``, so running a check never changes a notebook's random numbers.

=====================  ==========================================================================
tutorial               checks
=====================  ==========================================================================
T00 quickstart         :func:`check_swell_target`
T01 audio and mels     :func:`check_hz_to_mel`, :func:`check_mel_filterbank`, :func:`check_log_compress`
T02 diffusion          :func:`check_edm_conditions`, :func:`check_edm_scalings`, :func:`check_edm_loss`
T03 sampling           :func:`check_euler_step`, :func:`check_heun_step`, :func:`check_guided`,
                       :func:`check_heun_blowup`
T04 consistency        :func:`check_cd_target`, :func:`check_cd_loss`, :func:`check_branch_grads`
T05 CTM                :func:`check_ctm_jump`, :func:`check_gamma_step`, :func:`check_choose_sigma_mid`
T06 DITTO / DITTO-2    :func:`check_checkpointed`, :func:`check_optimise`, :func:`check_ditto2`,
                       :func:`check_refine_last`, :func:`check_predicted_speedup`
T07 your own control   :func:`check_brightness`, :func:`check_brightness_loss`
T08 steer a melody     :func:`check_chroma`, :func:`check_melody_loss`
T09 your own melody    :func:`check_typed_notes`, :func:`check_melody_target`
=====================  ==========================================================================

:func:`decode_from_t05` is no check: T06 uses it to decode with the settings the student chose in T05.

Modules: :mod:`.checking` (how a check compares and explains), :mod:`.checks_audio` (T01),
:mod:`.checks_diffusion` (T02, T03), :mod:`.checks_distill` (T04, T05), :mod:`.checks_ditto` (T06),
:mod:`.checks_control` (T00, T07) and :mod:`.checks_melody` (T08, T09).
"""

from .checking import TutorError
from .checks_audio import check_hz_to_mel, check_log_compress, check_mel_filterbank
from .checks_control import check_brightness, check_brightness_loss, check_swell_target, spectral_centroid_hz
from .checks_diffusion import (
    check_edm_conditions,
    check_edm_loss,
    check_edm_scalings,
    check_euler_step,
    check_guided,
    check_heun_blowup,
    check_heun_step,
)
from .checks_distill import (
    check_branch_grads,
    check_cd_loss,
    check_cd_target,
    check_choose_sigma_mid,
    check_ctm_jump,
    check_gamma_step,
)
from .checks_ditto import (
    check_checkpointed,
    check_ditto2,
    check_optimise,
    check_predicted_speedup,
    check_refine_last,
    decode_from_t05,
)
from .checks_melody import check_chroma, check_melody_loss, check_melody_target, check_typed_notes

__all__ = [
    "TutorError",
    "check_branch_grads",
    "check_brightness",
    "check_brightness_loss",
    "check_cd_loss",
    "check_cd_target",
    "check_checkpointed",
    "check_choose_sigma_mid",
    "check_chroma",
    "check_ctm_jump",
    "check_ditto2",
    "check_edm_conditions",
    "check_edm_loss",
    "check_edm_scalings",
    "check_euler_step",
    "check_gamma_step",
    "check_guided",
    "check_heun_blowup",
    "check_heun_step",
    "check_hz_to_mel",
    "check_log_compress",
    "check_mel_filterbank",
    "check_melody_loss",
    "check_melody_target",
    "check_optimise",
    "check_predicted_speedup",
    "check_refine_last",
    "check_swell_target",
    "check_typed_notes",
    "decode_from_t05",
    "spectral_centroid_hz",
]
