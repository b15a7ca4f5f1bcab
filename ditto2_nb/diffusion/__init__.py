"""Stage 1, the teacher: an EDM diffusion model on mels and how to sample it.

* :mod:`.schedule` -- the Karras noise-level grid and the training distribution of sigma;
* :mod:`.precond` -- EDM and consistency preconditioning, CTM's jump;
* :mod:`.networks` -- the 1-D UNet over time and its EDM :class:`Denoiser` wrapper;
* :mod:`.losses` -- the EDM denoising loss (with classifier-free-guidance tag dropout);
* :mod:`.samplers` -- Euler, Heun and ancestral samplers over a denoiser callable, CFG, seeded noise;
* :mod:`.teacher` -- :func:`load_teacher` (the shipped model in one line) and :func:`train_teacher`.
"""

from .losses import drop_tags, edm_loss
from .networks import Attention, Denoiser, ResBlock, UNet1d, count_parameters, drop_tag_input, noise_embedding
from .precond import append_dims, consistency_scalings, ctm_jump, edm_scalings
from .samplers import (
    SAMPLERS,
    Denoise,
    generate,
    get_sampler,
    guided,
    karras_for,
    nfe_per_sample,
    sample_ancestral,
    sample_euler,
    sample_heun,
    seeded_noise,
)
from .schedule import karras_sigmas, sample_log_normal_sigma
from .teacher import load_denoiser, load_teacher, teacher_net_config, train_teacher, unconditional_from

__all__ = ["SAMPLERS", "Attention", "Denoise", "Denoiser", "ResBlock", "UNet1d", "append_dims",
           "consistency_scalings", "count_parameters", "ctm_jump", "drop_tag_input", "drop_tags",
           "edm_loss", "edm_scalings", "generate", "get_sampler", "guided", "karras_for",
           "karras_sigmas", "load_denoiser", "load_teacher", "nfe_per_sample", "noise_embedding",
           "sample_ancestral", "sample_euler", "sample_heun", "sample_log_normal_sigma", "seeded_noise",
           "teacher_net_config", "train_teacher", "unconditional_from"]
