"""Stage 2, distillation: the teacher into one-step students, consistency (CM) and CTM models.

Both students start from the teacher's weights and learn from the teacher's ODE solver (Heun) on a
Karras grid; guidance is distilled in (one student evaluation replaces two teacher evaluations).

* :mod:`.students` -- :class:`ConsistencyModel`, :class:`CTMModel`, loading and the decode sidecar;
* :mod:`.losses` -- CD, CTM and DSM losses (the DSM term balanced by its gradient share), their
  distances, the guided teacher's Heun solver;
* :mod:`.sampling` -- ``cm_multistep``, ``ctm_gamma_sample`` and :func:`student_decode`;
* :mod:`.train` -- :func:`train_student` and :func:`load_distilled` (the shipped student in one line);
* :mod:`.compress` -- :func:`compress_student`, a narrower CTM student distilled from a trained one
  on the jumps DITTO-2 makes (fewer channels and blocks, the same steps).
"""

from .compress import compress_student
from .losses import (
    DISTANCES,
    cd_loss,
    ctm_loss,
    ctm_target,
    ctm_terms,
    dsm_loss,
    dsm_scale,
    l2,
    pseudo_huber,
    teacher_solve,
)
from .sampling import cm_multistep, ctm_gamma_sample, student_decode, student_times, trajectory_gap
from .students import (
    ConsistencyModel,
    CTMModel,
    decode_defaults,
    decode_file,
    load_student,
    make_student,
    unconditional_student,
)
from .train import load_distilled, train_student

__all__ = ["DISTANCES", "CTMModel", "ConsistencyModel", "cd_loss", "cm_multistep", "compress_student",
           "ctm_gamma_sample", "ctm_loss", "ctm_target", "ctm_terms", "decode_defaults", "decode_file",
           "dsm_loss", "dsm_scale", "l2", "load_distilled", "load_student", "make_student", "pseudo_huber",
           "student_decode", "student_times", "teacher_solve", "train_student", "trajectory_gap",
           "unconditional_student"]
