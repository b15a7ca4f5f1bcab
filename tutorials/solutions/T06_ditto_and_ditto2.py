"""Solutions to T06 (DITTO, then DITTO-2).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T06_ditto_and_ditto2.ipynb``; the lines above the first section only make this file importable on
its own.
"""

import torch
from torch.utils.checkpoint import checkpoint

from ditto2_nb.distill import student_decode


# %% ex-checkpoint
def my_checkpointed(denoise):
    """The same denoiser, but its activations are recomputed in backward instead of stored."""
    def run(x, sigma):
        return checkpoint(denoise, x, sigma, use_reentrant=False)
    return run

# %% ex-optimise
def my_optimise(generate, loss_fn, z0, iterations, lr):
    """Adam on the noise z: returns the optimised z and the mean loss of every iteration."""
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    losses = []
    for _ in range(iterations):
        per_example = loss_fn(generate(z))  # [B]
        opt.zero_grad()
        per_example.sum().backward()
        opt.step()
        losses.append(per_example.mean().item())
    return z.detach(), losses

# %% ex-ditto2
def my_ditto2(student, loss_fn, z0, iterations, lr, decode_steps, tags=None, decode=None):
    """DITTO-2: optimise through the 1-step jump, then decode once with decode_steps steps (settings
    `decode`: None for the default, or a dict such as {"sigma_mid": 1.0, "gamma": 0.0})."""
    surrogate = lambda z: student_decode(student, z * student.sigma_max, 1, tags)  # noqa: E731
    z, _ = my_optimise(surrogate, loss_fn, z0, iterations, lr)
    with torch.no_grad():
        x0 = student_decode(student, z * student.sigma_max, decode_steps, tags, seed=0, **(decode or {}))
    return z, x0

# %% ex-refine
def my_ditto2_refined(student, loss_fn, z0, iterations, lr, decode_steps, refine_last, tags=None, decode=None):
    """DITTO-2 whose last refine_last iterations differentiate the decode_steps-step decode (the same
    decode, settings `decode` included, as the final one)."""
    first_refined = iterations - refine_last  # iterations 0 .. first_refined - 1 use the 1-step jump
    calls = 0

    def generate(z):  # my_optimise calls it once per iteration, in order: one Adam state throughout
        nonlocal calls
        refined = calls >= first_refined
        calls += 1
        if refined:
            return student_decode(student, z * student.sigma_max, decode_steps, tags, seed=0, **(decode or {}))
        return student_decode(student, z * student.sigma_max, 1, tags)

    z, _ = my_optimise(generate, loss_fn, z0, iterations, lr)
    with torch.no_grad():
        x0 = student_decode(student, z * student.sigma_max, decode_steps, tags, seed=0, **(decode or {}))
    return z, x0

# %% ex-speedup
def predicted_speedup(S, M, R, iterations, cfg_passes):
    """DITTO's cost / DITTO-2's, in forward passes of the network on the batch (a backward = 2)."""
    ditto = iterations * S * cfg_passes * (1 + 1 + 2) + S * cfg_passes  # checkpointed steps; final sample
    ditto2 = (iterations - R) * (1 + 2) + R * M * (1 + 2) + M  # jumps; decode iterations; final decode
    return ditto / ditto2
