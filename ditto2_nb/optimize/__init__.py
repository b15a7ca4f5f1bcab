"""Stage 3, inference-time optimisation of the initial noise: DITTO and DITTO-2.

* :mod:`.methods` -- :func:`ditto` (through the teacher's S-step sampler) and :func:`ditto2`
  (through the student's 1-step jump, then an M-step decode);
* :mod:`.noise` -- x_T = sigma_max z scaled and decoded for each method (:class:`TeacherDecoder`,
  :class:`StudentDecoder`) and gradient checkpointing of the teacher's steps;
* :mod:`.loop` -- the shared Adam loop, :class:`OptimConfig`, :class:`Trace`, :class:`OptResult`.
"""

from .loop import (
    Callback,
    LossFn,
    OptimConfig,
    OptResult,
    Trace,
    into_trust_region,
    project_to_shell,
    typical_set_penalty,
)
from .methods import ditto, ditto2
from .noise import StudentDecoder, TeacherDecoder, checkpointed

__all__ = ["Callback", "LossFn", "OptResult", "OptimConfig", "StudentDecoder", "TeacherDecoder", "Trace",
           "checkpointed", "ditto", "ditto2", "into_trust_region", "project_to_shell", "typical_set_penalty"]
