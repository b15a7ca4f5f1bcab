"""Checks of T04 (consistency distillation) and T05 (CTM): the CD target and loss, the gradient of
each branch of the CD loss (what the stop-gradient removes), CTM's jump, one gamma-sampling step, and
the choice of the 2-step decode from a sweep."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ...core.config import DistillConfig
from ...diffusion.precond import append_dims, ctm_jump
from ...diffusion.schedule import karras_sigmas
from ...distill.losses import cd_loss, pseudo_huber, teacher_solve
from ...distill.sampling import ctm_gamma_sample
from .checking import (
    _TINY,
    TutorError,
    _as_tensor,
    _call,
    _close,
    _compare,
    _gen,
    _log_normal_sigmas,
    _passed,
    _tiny_cm_models,
    _tuple_of,
)

# ============================================================================ T04 consistency distillation


def _cd_batch(g: torch.Generator, n_grid: int = 12):
    b = 3
    grid = karras_sigmas(n_grid, 0.002, 80.0, append_zero=False)
    n = torch.randint(0, n_grid - 1, (b,), generator=g)
    x0 = torch.randn(b, _TINY.n_mels, 16, generator=g) * 0.5
    t, t_next = grid[n], grid[n + 1]
    return x0, t, t_next, x0 + append_dims(t, 3) * torch.randn(x0.shape, generator=g)


def check_cd_target(fn: Callable) -> None:
    """T04: ``fn(target, teacher, x_t, t [B], t_next [B]) -> f_target(x_hat_{t_next}, t_next)``
    after one teacher Heun step, under stop-gradient."""
    g = _gen()
    teacher, _, target = _tiny_cm_models(int(torch.randint(2**31, (1,), generator=g)))
    _, t, t_next, x_t = _cd_batch(g)
    with torch.no_grad():
        x_next = teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), None, 1.0)
        want = target(x_next, t_next)
        tn, tt = append_dims(t_next, 3), append_dims(t, 3)
        x_euler = x_t + (x_t - teacher(x_t, t)) / tt * (tn - tt)
        mistakes = [
            ("you gave the target x_t: first take one teacher Heun step from t to t_next.",
             target(x_t, t_next)),
            ("you gave the target x_t at time t: first take one teacher Heun step from t to t_next, "
             "then evaluate the target there.", target(x_t, t)),
            ("evaluate the target at t_next (where the teacher's step landed), not at t.", target(x_next, t)),
            ("that is an Euler step: the teacher takes a Heun step (add the corrector).",
             target(x_euler, t_next)),
            ("you returned the teacher's step itself: pass it through the target network, "
             "target(x_next, t_next).", x_next),
        ]
    got = _call(fn, target, teacher, x_t.clone(), t.clone(), t_next.clone())
    _compare(got, want, "my_cd_target(target, teacher, x_t, t, t_next)", rtol=1e-4, atol=1e-5,
             mistakes=mistakes)
    if isinstance(got, torch.Tensor) and got.requires_grad:
        raise TutorError("the target carries gradients: it must be a stop-gradient target. Compute it "
                         "under `with torch.no_grad():` (or .detach() it).")
    _passed("your CD target matches one teacher Heun step + the target network (no gradient)")


def check_cd_loss(fn: Callable) -> None:
    """T04: ``fn(student, target, teacher, x0, t, t_next, z) -> scalar`` vs
    :func:`ditto2_nb.distill.cd_loss` on the same draws (pseudo-Huber distance)."""
    g = _gen()
    seed = int(torch.randint(2**31, (1,), generator=g))
    teacher, student, target = _tiny_cm_models(seed)
    x0 = torch.randn(3, _TINY.n_mels, 16, generator=g) * 0.5
    cfg = DistillConfig(n_grid=12, w=1.0, distance="pseudo_huber")
    want = cd_loss(student, target, teacher, x0, None, torch.Generator().manual_seed(seed), cfg)
    gen = torch.Generator().manual_seed(seed)  # the same draws, in the library's order
    grid = karras_sigmas(cfg.n_grid, student.sigma_min, student.sigma_max, append_zero=False)
    n = torch.randint(0, cfg.n_grid - 1, (len(x0),), generator=gen)
    t, t_next = grid[n], grid[n + 1]
    z = torch.randn(x0.shape, generator=gen)
    with torch.no_grad():
        x_t = x0 + append_dims(t, 3) * z
        f_tgt = target(teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), None, 1.0), t_next)
        mistakes = [
            ("the student sees the noisy x_t = x0 + t · z, not the clean x0.",
             pseudo_huber(student(x0, t), f_tgt).mean()),
            ("scale the noise by t: x_t = x0 + t · z.", pseudo_huber(student(x0 + z, t), f_tgt).mean()),
            ("use the pseudo-Huber distance (distill.pseudo_huber), as the library does.",
             (student(x_t, t) - f_tgt).pow(2).flatten(1).mean(1).mean()),
            ("average the per-example distances with .mean(), not .sum().",
             pseudo_huber(student(x_t, t), f_tgt).sum()),
        ]
    got = _call(fn, student, target, teacher, x0.clone(), t.clone(), t_next.clone(), z.clone())
    _compare(got, want, "my_cd_loss(...)", rtol=1e-4, atol=1e-6, mistakes=mistakes)
    if not isinstance(got, torch.Tensor) or not got.requires_grad:
        raise TutorError("no gradient reaches the student: compute the student side student(x_t, t) with "
                         "gradients on (only the target goes under torch.no_grad()).")
    got.backward()
    if all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in student.parameters()):
        raise TutorError("no gradient reaches the student's weights: call student(x_t, t) outside "
                         "torch.no_grad() and without .detach().")
    if any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in target.parameters()):
        raise TutorError("gradients reach the target network: the target must be under stop-gradient "
                         "(torch.no_grad()).")
    _passed("your CD loss equals distill.cd_loss on the same draws; gradients reach the student only")


def _flat_grads(out, params: list, what: str) -> torch.Tensor:
    """The student's gradients as one flat vector: a list with one tensor (or None) per parameter, in
    ``f.parameters()`` order, or one flat tensor."""
    total = sum(p.numel() for p in params)
    if isinstance(out, torch.Tensor):
        if out.numel() != total:
            raise TutorError(f"{what} has {out.numel()} entries; f has {total} parameter entries. Return "
                             "one gradient per parameter (a list, as torch.autograd.grad gives them).")
        return out.detach().double().reshape(-1)
    if not isinstance(out, (list, tuple)) or len(out) != len(params):
        n = f" of length {len(out)}" if isinstance(out, (list, tuple)) else ""
        raise TutorError(f"{what} should be a list with one gradient per parameter of f ({len(params)} "
                         f"tensors, in f.parameters() order), got a {type(out).__name__}{n}.")
    flat = []
    for g, p in zip(out, params):
        if g is None:
            flat.append(torch.zeros(p.numel(), dtype=torch.float64))
            continue
        g = _as_tensor(g, what)
        if g.numel() != p.numel():
            raise TutorError(f"{what}: a gradient of shape {list(g.shape)} for a parameter of shape "
                             f"{list(p.shape)}: keep f.parameters() order.")
        flat.append(g.detach().double().reshape(-1))
    return torch.cat(flat)


def branch_grads_reference(f: nn.Module, x_t, t, x_next, t_next) -> tuple[torch.Tensor, torch.Tensor]:
    """T04: the gradient of ``pseudo_huber(f(x_t, t), f(x_next, t_next)).mean()`` with respect to
    f's parameters through each branch alone, as flat vectors: (student branch: the target side
    detached, target branch: the student side detached). Their sum is the whole gradient."""
    params = list(f.parameters())

    def grad(loss):
        gs = torch.autograd.grad(loss, params, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).double().reshape(-1)
                          for g, p in zip(gs, params)])

    g_student = grad(pseudo_huber(f(x_t, t), f(x_next, t_next).detach()).mean())
    g_target = grad(pseudo_huber(f(x_t, t).detach(), f(x_next, t_next)).mean())
    return g_student, g_target


def check_branch_grads(fn: Callable) -> None:
    """T04: ``fn(f, x_t, t, x_next, t_next) -> (g_student, g_target)``, the gradients of the CD loss
    with the target network replaced by f itself (no EMA, no stop-gradient) through the student
    branch ``f(x_t, t)`` and through the target branch ``f(x_next, t_next)`` separately
    (:func:`branch_grads_reference`), on a random tiny network."""
    g = _gen()
    teacher, f, _ = _tiny_cm_models(int(torch.randint(2**31, (1,), generator=g)))
    _, t, t_next, x_t = _cd_batch(g)
    with torch.no_grad():
        x_next = teacher_solve(teacher, x_t, torch.stack([t, t_next], 1), None, 1.0)
    want_s, want_t = branch_grads_reference(f, x_t, t, x_next, t_next)
    before = [p.detach().clone() for p in f.parameters()]
    f.zero_grad(set_to_none=True)
    out = _tuple_of(_call(fn, f, x_t.clone(), t.clone(), x_next.clone(), t_next.clone()), 2,
                    "my_branch_grads", "g_student, g_target")
    if any(not torch.equal(p, q) for p, q in zip(f.parameters(), before)):
        raise TutorError("my_branch_grads changed f's weights: only compute gradients (no optimiser step).")
    params = list(f.parameters())
    got_s = _flat_grads(out[0], params, "g_student")
    got_t = _flat_grads(out[1], params, "g_target")
    full, zero = want_s + want_t, torch.zeros_like(want_s)
    swapped = _close(got_s, want_t, 1e-4, 1e-7) and _close(got_t, want_s, 1e-4, 1e-7)
    if swapped and not _close(want_s, want_t, 1e-4, 1e-7):
        raise TutorError("the two branches are swapped: the student branch is f(x_t, t) (the target side "
                         "detached), the target branch f(x_next, t_next) (the student side detached).")
    atol = 1e-5 * float(torch.cat([want_s, want_t]).abs().max())
    _compare(got_s, want_s, "g_student (the gradient through f(x_t, t) only)", rtol=1e-4, atol=atol,
             mistakes=[
        ("that is the gradient of the whole loss, through both branches: detach the target side, "
         "f(x_next, t_next).detach(), to keep only the student branch.", full),
        ("no gradient: the student branch f(x_t, t) must be computed with gradients on.", zero),
    ])
    _compare(got_t, want_t, "g_target (the gradient through f(x_next, t_next) only)", rtol=1e-4, atol=atol,
             mistakes=[
                 ("without the stop-gradient the target branch does get a gradient: compute the loss with "
                  "the *student* side detached, f(x_t, t).detach(), and f(x_next, t_next) with gradients on "
                  "(under torch.no_grad() nothing flows at all).", zero),
                 ("that is the gradient of the whole loss (both branches); if you ran backward() twice, the "
                  "second added to the first: call f.zero_grad() in between, or use torch.autograd.grad.",
                  full),
                 ("the distance is symmetric, d(a, b) = d(b, a), but the target branch's gradient is not "
                  "minus the student's: it goes through f at another point, (x_next, t_next), with its own "
                  "derivative. Compute it: detach the student side.", -want_s),
             ])
    _passed(f"both branches match on a random tiny network ({len(params)} parameter tensors); their sum is "
            "the whole gradient, and the stop-gradient keeps only g_student")


# ============================================================================ T05 CTM


def check_ctm_jump(fn: Callable) -> None:
    """T05: ``fn(x_t, g, t, s) -> G = (s/t) x_t + (1 - s/t) g`` (one Euler step of the PF-ODE from t to
    s with g in place of the denoiser, derived in the tutorial) with t, s broadcastable ``[B, 1, 1]``."""
    gen = _gen()
    b = 4
    x_t = torch.randn(b, 6, 8, generator=gen, dtype=torch.float64) * 3.0
    g_val = torch.randn(b, 6, 8, generator=gen, dtype=torch.float64) * 0.5
    t = _log_normal_sigmas(gen, b) + 0.1
    s = t * torch.rand(b, generator=gen, dtype=torch.float64)
    s[0], s[1] = t[0], 0.0  # the two identities: G(x, t, t) = x and G(x, t, 0) = g
    t, s = t.view(-1, 1, 1), s.view(-1, 1, 1)
    r = s / t
    got = _call(fn, x_t.clone(), g_val.clone(), t.clone(), s.clone())
    _compare(got, ctm_jump(x_t, g_val, t, s), "my_ctm_jump(x_t, g, t, s)", rtol=1e-6, atol=1e-8, mistakes=[
        ("the two weights are swapped: at s = t the jump must return x_t itself (G(x, t, t) = x), and at "
         "s = 0 it must return g.", (1 - r) * x_t + r * g_val),
        ("you returned g: mix it with x_t, G = (s/t) · x_t + (1 - s/t) · g.", g_val),
        ("the weight of x_t is s/t, not t/s.",
         (t / s.clamp_min(1e-12)).clamp_max(1e12) * x_t + (1 - r) * g_val),
        ("the Euler step goes the wrong way: its slope is (x_t - g) / t, and the step is "
         "x_t + slope · (s - t) (s - t is negative).", x_t - (x_t - g_val) / t * (s - t)),
    ], nonfinite="Dividing by s? s can be 0 (a jump to the clean end): the weight of x_t is s / t.")
    _passed("G(x, t, s) matches precond.ctm_jump, including G(x, t, t) = x and G(x, t, 0) = g")


class _GModel(nn.Module):
    """Wraps a function G(x, t, s) in the interface of :func:`ditto2_nb.distill.ctm_gamma_sample`."""

    def __init__(self, G: Callable, eps: float):
        super().__init__()
        self.G, self.sigma_min = G, eps

    def forward(self, x, t, s, tags=None):
        return self.G(x, t, s)


def check_gamma_step(fn: Callable) -> None:
    """T05: ``fn(G, x, t, t_next, gamma, eps, z) -> x_next``, one CTM gamma-sampling step."""
    g = _gen()
    shape = (2, 4, 6)
    a = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5

    def G(x, t, s):
        return (s / t) * x + (1.0 - s / t) * torch.tanh(a * x)

    eps = 0.05 + 0.2 * float(torch.rand(1, generator=g))
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 5.0
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    t = float(2.0 + 10.0 * torch.rand(1, generator=g))
    cases = [(t, 0.4 * t, gamma) for gamma in (0.0, 0.5, 1.0)] + [(0.3 + eps, 0.0, 0.5)]
    for t, t_next, gamma in cases:
        want = ctm_gamma_sample(_GModel(G, eps), x, [t, t_next], gamma=gamma, noise_fn=lambda _: z)
        s = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps if t_next > 0 else eps
        s_no_eps = (1 - gamma**2) ** 0.5 * t_next
        s_last = (1 - gamma**2) ** 0.5 * (t_next - eps) + eps
        mistakes = [("the noise scale is sqrt(t_next² - s²) (only the noise missing at s), not t_next.",
                     G(x, t, s) + t_next * z)]
        if t_next > 0 and gamma > 0:
            mistakes += [("independent noises add in *variance*, not in standard deviation: the jump "
                          "leaves noise of level s, so the fresh noise needs the variance t_next² - s², "
                          "a scale of sqrt(t_next² - s²), not t_next - s.", G(x, t, s) + (t_next - s) * z)]
        if t_next > 0:
            mistakes += [
                ("s = sqrt(1 - γ²) · (t_next - eps) + eps: the eps terms are missing.",
                 G(x, t, s_no_eps) + max(t_next**2 - s_no_eps**2, 0.0) ** 0.5 * z),
                ("s uses sqrt(1 - γ²), not γ: γ = 0 must jump exactly to t_next with no noise.",
                 G(x, t, gamma * (t_next - eps) + eps)
                 + max(t_next**2 - (gamma * (t_next - eps) + eps) ** 2, 0.0) ** 0.5 * z),
                ("the noise is missing: add sqrt(t_next² - s²) · z after the jump.", G(x, t, s)),
                ("jump first, then add noise: x_next = G(x, t, s) + sqrt(t_next² - s²) · z.",
                 G(x + max(t_next**2 - s**2, 0.0) ** 0.5 * z, t, s)),
            ]
        else:
            mistakes += [("at the last step (t_next = 0) jump to s = eps, with no noise.", G(x, t, s_last)),
                         ("at the last step jump to s = eps, not 0: the student was trained on times down "
                          "to eps (sigma_min) only, and s = 0 is a time it never saw.", G(x, t, 0.0))]
        got = _call(fn, G, x.clone(), t, t_next, gamma, eps, z.clone())
        _compare(got, want, f"my_gamma_step (t={t:.3g}, t_next={t_next:.3g}, γ={gamma:g})", rtol=1e-6,
                 atol=1e-8, mistakes=mistakes,
                 nonfinite="At the last step (t_next = 0) jump to s = eps with no noise; before "
                           "it, s <= t_next keeps t_next² - s² >= 0 under the square root.")
    _passed("your gamma step matches distill.ctm_gamma_sample for γ = 0, 0.5, 1 and the last step (to eps)")


# The rule of T05's decode choice: a 2-step decode must be this much closer to the teacher than the jump.
QUALITY_FACTOR = 0.8


def choose_decode_reference(sweep: dict, one_step_err: torch.Tensor, factor: float = QUALITY_FACTOR, *,
                            gap_stat: str = "median", err_stat: str = "median"):
    """T05's rule: the setting ``(sigma_mid, gamma)`` with the smallest median gap among those whose
    median teacher error is at most ``factor`` x the 1-step jump's; if none qualifies, the setting
    with the smallest median teacher error. (``gap_stat``/``err_stat`` "mean": typical mistakes.)"""
    stat = lambda v, how: float(getattr(torch.as_tensor(v), how)())  # noqa: E731
    gap = {k: stat(v["gap"], gap_stat) for k, v in sweep.items()}
    err = {k: stat(v["err"], err_stat) for k, v in sweep.items()}
    limit = factor * stat(one_step_err, err_stat)
    ok = [k for k in sweep if err[k] <= limit]
    return min(ok, key=gap.get) if ok else min(sweep, key=err.get)


def _per_noise(g: torch.Generator, median: float, n: int, spread: float = 0.3) -> torch.Tensor:
    """n positive values whose median is exactly ``median`` (n odd)."""
    z = torch.randn(n, generator=g, dtype=torch.float64)
    z = z - z.median()
    return (median * (spread * z).exp()).float()


def _planted_sweep(g: torch.Generator, none_qualify: bool) -> tuple[dict, torch.Tensor]:
    """A random sweep ``{(sigma_mid, gamma): {"gap": [N], "err": [N]}}`` and the jump's error [N],
    with settings planted where typical wrong rules go astray (see :func:`check_choose_sigma_mid`)."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=g))  # noqa: E731
    n = 2 * int(torch.randint(3, 6, (1,), generator=g)) + 1  # 7, 9 or 11 noises: one middle value
    mids = sorted({round(10 ** u(-1.3, 1.2), 3) for _ in range(8)})[:5]
    keys = [(m, gm) for gm in (0.0, 0.5, 1.0) for m in mids]
    order = torch.randperm(len(keys), generator=g).tolist()
    one_med = u(0.05, 0.3)
    one = _per_noise(g, one_med, n, 0.15)
    ratio, gap = {}, {}
    for k in keys:  # fillers: qualify or not, never near the limit
        r = u(0.45, 1.4)
        ratio[k] = r if abs(r - QUALITY_FACTOR) > 0.03 else r + 0.1
        gap[k] = 10 ** u(-0.3, 1.3)  # 0.5 .. 20
    if none_qualify:
        for k in keys:
            ratio[k] = u(0.86, 1.5)
        gap[keys[order[0]]] = 0.02
    else:
        k_ans, k_deg, k_deg2, k_best, k_mid, k_big = (keys[i] for i in order[:6])
        ratio[k_ans], gap[k_ans] = u(0.55, 0.74), u(0.2, 0.4)  # the answer
        # Two more qualifying settings keep the diagnoses apart: the mean's pick is never the one
        # closest to the teacher (k_mid has a smaller gap), nor is the largest gap (k_big's is larger).
        ratio[k_mid], gap[k_mid] = u(0.55, 0.74), u(0.6, 1.0)
        ratio[k_big], gap[k_big] = u(0.55, 0.74), u(25.0, 40.0)
        ratio[k_deg], gap[k_deg] = u(0.86, 0.97), u(0.02, 0.05)  # better than the jump, not 20% better
        ratio[k_deg2], gap[k_deg2] = u(1.05, 1.3), u(0.005, 0.01)  # the smallest gap of all: no better
        ratio[k_best], gap[k_best] = u(0.2, 0.3), u(5.0, 20.0)  # the best quality, a large gap
    sweep = {}
    for k in keys:
        gaps = _per_noise(g, gap[k], n)
        if not none_qualify and k == k_ans:
            gaps[gaps.argmax()] = 1000.0 * gap[k]  # one clip goes astray: the mean would reject it
        sweep[k] = {"gap": gaps, "err": _per_noise(g, ratio[k] * one_med, n, 0.15)}
    return sweep, one


def _key_of(out, sweep: dict):
    """The sweep key the student returned, or a TutorError."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TutorError(f"return one key of the sweep, a tuple (sigma_mid, gamma); got "
                         f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list))
                                                    else f" {out!r}"[:80]) + ".")
    try:
        m, gm = float(out[0]), float(out[1])
    except (TypeError, ValueError, RuntimeError):
        raise TutorError(f"return (sigma_mid, gamma) as two numbers, got {out!r}"[:200]) from None
    for k in sweep:
        if math.isclose(k[0], m, rel_tol=1e-6) and math.isclose(k[1], gm, abs_tol=1e-9):
            return k
    raise TutorError(f"(sigma_mid={m:g}, gamma={gm:g}) is not a setting of the sweep: return one of its "
                     "keys (sigma_mid, gamma), in that order.")


def check_choose_sigma_mid(fn: Callable) -> None:
    """T05: ``fn(sweep, one_step_err) -> (sigma_mid, gamma)`` follows the stated rule on random
    sweeps (:func:`choose_decode_reference`); a wrong pick is explained by what it is."""
    g = _gen()
    fallback = (" When no setting qualifies, the rule takes the setting with the smallest median "
                "teacher error.")
    for none_qualify in (False, True):
        sweep, one = _planted_sweep(g, none_qualify)
        want = choose_decode_reference(sweep, one)
        try:
            out = _call(fn, {k: {n: t.clone() for n, t in v.items()} for k, v in sweep.items()}, one.clone(),
                        what="choose_sigma_mid")
        except TutorError as e:
            if not none_qualify or "not written yet" in str(e):
                raise
            raise TutorError(f"{e} In this sweep no setting qualifies.{fallback}") from None
        got = _key_of(out, sweep)
        if got == want:
            continue
        med = {k: (float(v["gap"].median()), float(v["err"].median())) for k, v in sweep.items()}
        mean = {k: (float(v["gap"].mean()), float(v["err"].mean())) for k, v in sweep.items()}
        one_med, limit = float(one.median()), QUALITY_FACTOR * float(one.median())
        name = lambda k: f"(sigma_mid={k[0]:g}, gamma={k[1]:g})"  # noqa: E731
        median_hint = (" Summarise each setting by the median over the noises (torch.median / .median()), "
                       "not the mean: one clip that goes astray must not decide.")
        gap_g, err_g = med[got]
        means = {choose_decode_reference(sweep, one, gap_stat=a, err_stat=b)
                 for a, b in (("mean", "mean"), ("mean", "median"), ("median", "mean"))}
        median_hint = median_hint if got in means else ""
        if none_qualify:
            raise TutorError(f"no setting qualifies in this sweep (the smallest median teacher error is "
                             f"{med[want][1] / one_med:.2f} × the 1-step jump's, above {QUALITY_FACTOR})."
                             f"{fallback} "
                             f"That is {name(want)}; you returned {name(got)}.")
        if err_g > limit:
            r = err_g / one_med
            why = (f" It is closer to the teacher than the jump, but the rule asks for {QUALITY_FACTOR} × "
                   "the jump's error or less (a second step that buys little quality is not worth it)."
                   if r <= 1 else
                   " It is no closer to the teacher than the 1-step jump: its second step buys nothing.")
            raise TutorError(f"{name(got)} does not qualify: its median teacher error is {r:.2f} × the "
                             f"1-step jump's median.{why} Keep only the settings with median err <= "
                             f"{QUALITY_FACTOR} × median(one_step_err), then take the smallest median gap."
                             f"{median_hint}")
        qualifying = [k for k in sweep if med[k][1] <= limit]
        if got == min(qualifying, key=lambda k: mean[k][0]):
            raise TutorError(f"{name(got)} has the smallest *mean* gap among the qualifying settings, but "
                             f"{name(want)} has the smallest median gap ({med[want][0]:.3g} vs "
                             f"{gap_g:.3g} dB²).{median_hint or ' Use the median.'}")
        if got == min(qualifying, key=lambda k: med[k][1]):
            raise TutorError(f"{name(got)} is the qualifying setting closest to the teacher, but among the "
                             f"qualifying ones the rule picks the smallest median gap: {name(want)} "
                             f"({med[want][0]:.3g} vs {gap_g:.3g} dB²). The teacher error only decides who "
                             "qualifies.")
        if got == max(qualifying, key=lambda k: med[k][0]):
            raise TutorError(f"{name(got)} has the *largest* median gap of the qualifying settings: pick the "
                             f"smallest ({name(want)}, {med[want][0]:.3g} dB²).{median_hint}")
        raise TutorError(f"{name(got)} qualifies, but {name(want)} qualifies too and has a smaller median "
                         "gap "
                         f"({med[want][0]:.3g} vs {gap_g:.3g} dB²).{median_hint}")
    _passed("your choice follows the rule on two random sweeps (one where settings qualify, one where "
            "none does)")
