"""Inference-time optimisation of the initial noise: DITTO and DITTO-2.

Both optimise a unit-scale noise z (x_T = sigma_max z) with Adam so that a control loss of the
generated mel goes down, the models frozen:

* :func:`ditto`  -- x_0 from the teacher's full deterministic S-step sampler (with CFG), gradients
  through every step, each network evaluation gradient-checkpointed (memory O(1) in S).
* :func:`ditto2` -- x_0 from the distilled student's 1-step jump (the surrogate); after the
  iterations, one decode with M student steps (injected noise fixed by a seed). The last
  ``refine_last`` (R) iterations may backpropagate through the M-step decode itself
  (decode-aware refinement), which closes the surrogate/decode gap of a weakly distilled student.

``loss_fn(mel [B, n_mels, frames]) -> [B]`` is any per-example control loss (see :mod:`ditto2_nb.controls`),
so a batch of different targets is optimised at once. Both return an :class:`OptResult` with a
:class:`Trace` (loss per iteration, wall time, network evaluations, snapshots). With
``cfg.iterations = 0`` they return the method's decode of the initial noise, unoptimised.

See docs/method.md, sections 5.2 (DITTO), 5.3 (DITTO-2) and 5.4 (decode-aware refinement).
"""

from __future__ import annotations

import time

import torch

from ..core import validate as check
from .loop import Callback, LossFn, OptimConfig, OptResult, _optimise
from .noise import StudentDecoder, TeacherDecoder, checkpointed


def ditto(teacher, loss_fn: LossFn, z0: torch.Tensor, tags: torch.Tensor | None = None, *,
          steps: int = 20, w: float = 2.0, sampler: str = "euler", grad_checkpoint: bool = True,
          cfg: OptimConfig = OptimConfig(), progress: bool = False,
          callback: Callback | None = None) -> OptResult:
    """DITTO: optimise z through the teacher's full S-step deterministic sampler.

    Shapes: z0 ``[B, n_mels, frames]`` (unit scale), tags ``[B, n_tags]`` or None. Reference:
    Novack et al. 2024 (DITTO), with gradient checkpointing per sampler step.
    """
    if sampler == "ancestral":
        raise ValueError("DITTO needs a deterministic sampler: use 'euler' or 'heun'")
    steps, w = check.limited("steps", steps), check.limited("w", w)
    z0 = check.noise("z0", z0, teacher.cfg)
    tags = check.tags("tags", tags, len(z0), teacher.cfg)
    decode = TeacherDecoder(teacher, tags, steps=steps, w=w, sampler=sampler, device=z0.device)
    step_fn = checkpointed(decode.denoise) if grad_checkpoint else decode.denoise

    def generate(z, it):
        return decode(z, step_fn), False

    z, trace = _optimise(z0, generate, loss_fn, cfg, teacher, progress, "DITTO", callback)
    t0 = time.perf_counter()
    with torch.no_grad():
        x0 = check.finite_output("DITTO's final sample", decode(z),
                                 "the teacher's weights or its settings are non-finite")
    return OptResult(z, x0, trace, seconds_total=trace.wall + time.perf_counter() - t0)


def ditto2(student, loss_fn: LossFn, z0: torch.Tensor, tags: torch.Tensor | None = None, *,
           decode_steps: int = 2, gamma: float = 0.0, sigma_mid: float | None = None,
           decode_seed: int = 0, cfg: OptimConfig = OptimConfig(),
           progress: bool = False, callback: Callback | None = None) -> OptResult:
    """DITTO-2: optimise z through the student's 1-step jump, then decode with M steps.

    The last ``cfg.refine_last`` iterations backpropagate through the M-step decode instead of
    the surrogate. The decode's injected noise comes from ``decode_seed`` and is the same in every
    refinement iteration and in the final decode, so the output is a function of z.
    Reference: Novack et al. 2024 (DITTO-2); decode-aware refinement is this project's addition.
    """
    decode_steps = check.limited("decode_steps", decode_steps)
    z0 = check.noise("z0", z0, student.cfg)
    tags = check.tags("tags", tags, len(z0), student.cfg)
    decode = StudentDecoder(student, tags, gamma=gamma, sigma_mid=sigma_mid, seed=decode_seed)

    def generate(z, it):
        if it >= cfg.iterations - cfg.refine_last:
            return decode(z, decode_steps), True
        return decode(z, 1), False

    z, trace = _optimise(z0, generate, loss_fn, cfg, student, progress, "DITTO-2", callback)
    t0 = time.perf_counter()
    with torch.no_grad():
        x0 = check.finite_output("DITTO-2's final decode", decode(z, decode_steps),
                                 "the student's weights or the decode settings are non-finite")
        x0_surrogate = decode(z, 1)
    return OptResult(z, x0, trace, x0_surrogate,
                     seconds_total=trace.wall + time.perf_counter() - t0)
