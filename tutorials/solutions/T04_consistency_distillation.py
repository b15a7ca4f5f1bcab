"""Solutions to T04 (consistency distillation).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T04_consistency_distillation.ipynb``; the lines above the first section only make this file importable
on its own.
"""

import torch

from ditto2_nb.distill import pseudo_huber
from ditto2_nb.diffusion import append_dims


# %% ex-cd-target
def my_cd_target(target, teacher, x_t, t, t_next):
    """One teacher Heun step t -> t_next, then the target network at t_next; no gradient."""
    with torch.no_grad():
        tb, tnb = append_dims(t, x_t.ndim), append_dims(t_next, x_t.ndim)  # [B, 1, 1]
        d = (x_t - teacher(x_t, t)) / tb
        x_euler = x_t + d * (tnb - tb)
        d_next = (x_euler - teacher(x_euler, t_next)) / tnb
        x_next = x_t + 0.5 * (d + d_next) * (tnb - tb)
        return target(x_next, t_next)

# %% ex-cd-loss
def my_cd_loss(student, target, teacher, x0, t, t_next, z):
    """CD loss: pseudo-Huber distance between f_theta(x_t, t) and the stop-gradient target."""
    x_t = x0 + append_dims(t, x0.ndim) * z
    f_target = my_cd_target(target, teacher, x_t, t, t_next)
    return pseudo_huber(student(x_t, t), f_target).mean()

# %% ex-branch-grads
def my_branch_grads(f, x_t, t, x_next, t_next):
    """The gradient of d(f(x_t, t), f(x_next, t_next)) through each branch alone: detach the other one."""
    params = list(f.parameters())
    g_student = torch.autograd.grad(pseudo_huber(f(x_t, t), f(x_next, t_next).detach()).mean(), params,
                                    allow_unused=True)
    g_target = torch.autograd.grad(pseudo_huber(f(x_t, t).detach(), f(x_next, t_next)).mean(), params,
                                   allow_unused=True)
    return list(g_student), list(g_target)
