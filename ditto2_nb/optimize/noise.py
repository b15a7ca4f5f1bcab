"""x_T, the noise both methods optimise: scaled and decoded in one place.

The optimised variable is a unit-scale noise z ``[B, n_mels, frames]`` (make it with
:func:`~ditto2_nb.diffusion.seeded_noise`: one generator per example, so an example's noise does
not depend on the batch). A sampler starts from x_T = sigma_max z:

* :class:`TeacherDecoder` (DITTO) -- x_T = sigmas[0] z on the Karras grid over the teacher's
  sigma range (sigmas[0] = sigma_max), then the teacher's deterministic S-step sampler with CFG;
  :func:`checkpointed` wraps its denoiser so memory does not grow with S under gradients.
* :class:`StudentDecoder` (DITTO-2) -- x_T = student.sigma_max z, then M student steps
  (:func:`~ditto2_nb.distill.student_decode`) whose injected noise comes from a seed.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from ..diffusion.samplers import get_sampler, guided, karras_for
from ..distill.sampling import check_decode, decode_unchecked


def checkpointed(denoise):
    """Gradient checkpointing around each denoiser call: activations are recomputed in the
    backward pass instead of stored, so memory does not grow with the number of steps."""

    def run(x, sigma):
        if not torch.is_grad_enabled():
            return denoise(x, sigma)
        return checkpoint(denoise, x, torch.as_tensor(sigma), use_reentrant=False)

    return run


class TeacherDecoder:
    """z ``[B, n_mels, frames]`` -> x_0: the teacher's ``steps``-step ``sampler`` with CFG scale ``w`` from
    x_T = sigmas[0] z. ``decoder(z, step_fn)`` runs the sampler on ``step_fn`` (e.g. the
    :func:`checkpointed` guided denoiser) instead of the guided denoiser itself."""

    def __init__(self, teacher, tags: torch.Tensor | None = None, *, steps: int = 20, w: float = 2.0,
                 sampler: str = "euler", device: torch.device | str = "cpu"):
        self.sigmas = karras_for(teacher, steps).to(device)  # [S + 1], sigmas[0] = sigma_max
        self.denoise = guided(teacher, tags, w)
        self.sample = get_sampler(sampler)

    def x_T(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.sigmas[0]

    def __call__(self, z: torch.Tensor, step_fn=None) -> torch.Tensor:
        return self.sample(step_fn or self.denoise, self.x_T(z), self.sigmas)


class StudentDecoder:
    """z ``[B, n_mels, frames]`` -> x_0 with ``steps`` evaluations of a CM or CTM student from
    x_T = student.sigma_max z; the injected noise comes from ``seed``, so the output is a function
    of z (the same in every iteration and in the final decode)."""

    def __init__(self, student, tags: torch.Tensor | None = None, *, gamma: float = 0.0,
                 sigma_mid: float | None = None, seed: int = 0):
        check_decode(student, None, gamma, sigma_mid, seed)
        self.student, self.tags = student, tags
        self.decode_kw = dict(gamma=gamma, sigma_mid=sigma_mid, seed=seed)

    def x_T(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.student.sigma_max

    def __call__(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        return decode_unchecked(self.student, self.x_T(z), steps, self.tags, **self.decode_kw)
