"""Checks of T06 (DITTO and DITTO-2): gradient checkpointing, the Adam loop over the noise,
DITTO-2 (1-step surrogate in the loop, one decode at the end), decode-aware refinement (the last R
iterations through the decode, with the decode settings passed in) and the cost model's predicted
speed-up; and :func:`decode_from_t05`, the 2-step decode settings T05 recorded, for T06 to use."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ...distill.sampling import student_decode
from ...optimize.loop import OptimConfig
from ...optimize.methods import ditto2
from .checking import (
    _TINY,
    TutorError,
    _as_tensor,
    _call,
    _close,
    _compare,
    _gen,
    _passed,
    _tiny_cm_models,
    _tiny_ctm_student,
    _tuple_of,
)

# ============================================================================ T06 DITTO and DITTO-2


class _Counted(nn.Module):
    """A small denoiser that counts how often it runs (forward passes and recomputations)."""

    def __init__(self, shape: tuple[int, ...], g: torch.Generator):
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64) * 0.5)
        self.calls = 0

    def forward(self, x, sigma):
        self.calls += 1
        return torch.tanh(self.w * x) / (1.0 + torch.as_tensor(sigma, dtype=x.dtype))


def check_checkpointed(fn: Callable) -> None:
    """T06: ``fn(denoise) -> denoise'``, the same function with gradient checkpointing (same values
    and gradients; the forward pass runs again during backward instead of storing activations)."""
    g = _gen()
    shape = (2, 3, 5)
    net = _Counted(shape, g)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64)
    sigmas = [torch.tensor(s, dtype=torch.float64) for s in (3.0, 1.0, 0.3)]

    def run(step):
        net.zero_grad()
        net.calls = 0
        x = x0.clone().requires_grad_(True)
        h = x
        for s in sigmas:
            h = step(h, s)
        (h**2).sum().backward()
        return h.detach(), x.grad, net.w.grad, net.calls

    ref_out, ref_gx, ref_gw, _ = run(net)
    wrapped = _call(fn, net)
    if not callable(wrapped):
        raise TutorError(f"my_checkpointed should return a function (the wrapped denoiser), got "
                         f"{type(wrapped).__name__}.")
    out, gx, gw, calls = run(lambda x, s: _call(wrapped, x, s, what="the wrapped denoiser"))
    _compare(out, ref_out, "the wrapped denoiser's output", rtol=1e-6, atol=1e-9)
    if gx is None or gw is None:
        raise TutorError("no gradient flows through the wrapped denoiser (to x or to the weights): pass x "
                         "and sigma as arguments to checkpoint(...), and use use_reentrant=False.")
    _compare(gx, ref_gx, "the gradient with respect to x through the wrapped denoiser", rtol=1e-6, atol=1e-9)
    _compare(gw, ref_gw, "the gradient with respect to the weights", rtol=1e-6, atol=1e-9)
    n = len(sigmas)
    if calls < 2 * n:
        raise TutorError(f"no recomputation happened: the denoiser ran {calls} times for {n} steps (expected "
                         f"{2 * n}: once forward, once more during backward). Wrap each call in "
                         "torch.utils.checkpoint.checkpoint(denoise, x, sigma, use_reentrant=False).")
    _passed(f"same values and gradients, and the denoiser ran {calls} times for {n} steps "
            "(recomputed in backward instead of stored)")


def _reference_optimise(generate, loss_fn, z0, iterations, lr, *, zero_grad=True, opt="adam",
                        maximize=False):
    z = z0.detach().clone().requires_grad_(True)
    o = torch.optim.Adam([z], lr=lr, maximize=maximize) if opt == "adam" else torch.optim.SGD([z], lr=lr)
    losses = []
    for _ in range(iterations):
        per_example = loss_fn(generate(z))
        if zero_grad:
            o.zero_grad(set_to_none=True)
        per_example.sum().backward()
        o.step()
        losses.append(per_example.mean().item())
    return z.detach(), losses


def _losses_list(losses, iterations: int, what: str) -> torch.Tensor:
    if isinstance(losses, torch.Tensor):
        losses = losses.detach().reshape(-1).tolist() if losses.ndim <= 1 else None
    if not isinstance(losses, (list, tuple)) or len(losses) != iterations:
        n = len(losses) if isinstance(losses, (list, tuple)) else type(losses).__name__
        raise TutorError(f"{what}: record one loss per iteration ({iterations} numbers), got {n}.")
    try:
        return torch.tensor([float(v) for v in losses], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TutorError(f"{what}: each recorded loss should be one number (per_example.mean().item()), "
                         f"got {type(losses[0]).__name__} of shape "
                         f"{list(getattr(losses[0], 'shape', []))}.") from None


def check_optimise(fn: Callable) -> None:
    """T06: ``fn(generate, loss_fn, z0, iterations, lr) -> (z, losses)``, Adam on the noise z."""
    g = _gen()
    b, dim = 3, 6
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5
    y = torch.rand(dim, generator=g, dtype=torch.float64) - 0.5
    generate = lambda z: torch.tanh(z @ a)  # noqa: E731
    loss_fn = lambda x: ((x - y) ** 2).mean(-1)  # noqa: E731 - one loss per example [B]
    z0 = torch.randn(b, dim, generator=g, dtype=torch.float64)
    iterations = int(torch.randint(5, 12, (1,), generator=g))
    lr = 0.02 + 0.08 * float(torch.rand(1, generator=g))
    z_ref, loss_ref = _reference_optimise(generate, loss_fn, z0, iterations, lr)
    z0_copy = z0.clone()
    out = _tuple_of(_call(fn, generate, loss_fn, z0, iterations, lr), 2, "my_optimise", "z, losses")
    if not torch.equal(z0, z0_copy):
        raise TutorError("my_optimise changed z0 in place: work on a copy, z = z0.detach().clone()"
                         ".requires_grad_(True).")
    z = _as_tensor(out[0], "the optimised z")
    losses = _losses_list(out[1], iterations, "my_optimise")
    if _close(z.detach().double(), z0.double(), 0, 1e-12):
        raise TutorError("z never changed: call opt.step() after loss.backward() in every iteration (and "
                         "give the optimiser the tensor you optimise: torch.optim.Adam([z], lr=lr)).")
    _compare(losses[0], torch.tensor(loss_ref[0], dtype=torch.float64), "the first recorded loss",
             rtol=1e-5, atol=1e-8, mistakes=[
                 ("record the mean over the batch, per_example.mean().item(), not the sum.",
                  torch.tensor(loss_ref[0] * b, dtype=torch.float64))])
    cands = [("gradients pile up across iterations: call opt.zero_grad() before each backward().",
              dict(zero_grad=False)),
             ("that is gradient *ascent*: the loss must go down (minimise; don't negate the gradient).",
              dict(maximize=True)),
             ("use Adam (torch.optim.Adam([z], lr=lr)), as DITTO does, not plain SGD.", dict(opt="sgd"))]
    _compare(z, z_ref, f"z after {iterations} iterations", rtol=1e-4, atol=1e-6, mistakes=[
        (msg, _reference_optimise(generate, loss_fn, z0, iterations, lr, **kw)[0]) for msg, kw in cands])
    _compare(losses, torch.tensor(loss_ref, dtype=torch.float64), "the recorded losses", rtol=1e-4,
             atol=1e-7, hint=" Record each iteration's loss before opt.step() changes z.")
    _passed(f"your loop reproduces Adam on z ({iterations} iterations, lr {lr:.3f}); "
            f"loss {loss_ref[0]:.4f} -> {loss_ref[-1]:.4f}")


def _tiny_ditto2_problem(g: torch.Generator):
    """(frozen tiny CM student, a per-example loss [B], z0 [2, n_mels, 16]) drawn from ``g``."""
    _, student, _ = _tiny_cm_models(int(torch.randint(2**31, (1,), generator=g)))
    student.requires_grad_(False)
    frames = 16
    y = torch.rand(frames, generator=g) - 0.5
    loss_fn = lambda mel: ((mel.mean(1) - y) ** 2).mean(-1)  # noqa: E731 - [B]
    return student, loss_fn, torch.randn(2, _TINY.n_mels, frames, generator=g)


def _decode_case(g: torch.Generator):
    """A tiny CTM student (its decode uses both settings) and random decode settings for it."""
    student = _tiny_ctm_student(int(torch.randint(2**31, (1,), generator=g)))
    decode = {"sigma_mid": round(0.1 + 4.0 * float(torch.rand(1, generator=g)), 3), "gamma": 0.5}
    return student, decode


_SIGNATURE = {
    "my_ditto2": "my_ditto2(student, loss_fn, z0, iterations, lr, decode_steps, tags=None, decode=None)",
    "my_ditto2_refined": "my_ditto2_refined(student, loss_fn, z0, iterations, lr, decode_steps, refine_last, "
                         "tags=None, decode=None)",
}


def _call_with_decode(fn: Callable, name: str, *args):
    """Call the student's DITTO-2 with a ``decode`` argument; an old signature gets a plain hint."""
    try:
        return _call(fn, *args, what=name)
    except TutorError as e:
        if "positional argument" in str(e) or "unexpected keyword" in str(e):
            raise TutorError(f"{e} Keep the signature {_SIGNATURE[name]}: decode is a dict of "
                             "student_decode's settings (sigma_mid, gamma), or None for the "
                             "default.") from None
        raise


def _decode_settings_mistakes(student, z, decode: dict, steps: int) -> list:
    with torch.no_grad():
        default = student_decode(student, z * student.sigma_max, steps, seed=0)
        mid_only = student_decode(student, z * student.sigma_max, steps, seed=0,
                                  sigma_mid=decode["sigma_mid"])
    return [
        ("your decode ignores the `decode` settings: pass them on, student_decode(..., seed=0, "
         "**(decode or {})).", default),
        (f"your decode used sigma_mid but not gamma = {decode['gamma']:g}: pass every setting of `decode` "
         "on to student_decode.", mid_only),
    ]


def check_ditto2(fn: Callable) -> None:
    """T06: ``fn(student, loss_fn, z0, iterations, lr, decode_steps, tags=None, decode=None) -> (z, x0)``
    vs :func:`ditto2_nb.optimize.ditto2` (1-step surrogate in the loop, one ``decode_steps`` decode,
    with the decode settings ``decode``: None for the student's default, or a dict such as
    ``{"sigma_mid": 1.0, "gamma": 0.5}``); once with the default and once with random settings on a CTM
    student."""
    g = _gen()
    student, loss_fn, z0 = _tiny_ditto2_problem(g)
    iterations, lr = int(torch.randint(4, 9, (1,), generator=g)), 0.05
    ref = ditto2(student, loss_fn, z0, decode_steps=2, decode_seed=0,
                 cfg=OptimConfig(iterations=iterations, lr=lr, snapshot_every=0))
    out = _tuple_of(_call(fn, student, loss_fn, z0.clone(), iterations, lr, 2), 2, "my_ditto2", "z, x0")
    one_step = lambda z: student_decode(student, z * student.sigma_max, 1)  # noqa: E731
    unscaled = lambda z: student_decode(student, z, 1)  # noqa: E731
    z_unscaled, _ = _reference_optimise(unscaled, loss_fn, z0, iterations, lr)
    _compare(out[0], ref.z, "the optimised z", rtol=1e-4, atol=1e-5, mistakes=[
        ("the student starts from x_T = z · sigma_max: multiply z by student.sigma_max before the jump.",
         z_unscaled)], hint=" Optimise through the 1-step surrogate: student_decode(student, "
                            "z * student.sigma_max, 1) inside my_optimise.")
    with torch.no_grad():
        x_one = one_step(ref.z)
        x_other_seed = student_decode(student, ref.z * student.sigma_max, 2, seed=1)
        x_unscaled = student_decode(student, ref.z, 2)
    _compare(out[1], ref.x0, "the decoded x0", rtol=1e-4, atol=1e-5, mistakes=[
        ("x0 is the 1-step surrogate: after the loop, decode once with decode_steps steps.", x_one),
        ("decode from x_T = z · sigma_max.", x_unscaled),
        ("fix the decode's injected noise with seed=0 (student_decode(..., seed=0)).", x_other_seed),
    ])
    student, decode = _decode_case(g)
    ref = ditto2(student, loss_fn, z0, decode_steps=2, decode_seed=0, **decode,
                 cfg=OptimConfig(iterations=iterations, lr=lr, snapshot_every=0))
    out = _tuple_of(_call_with_decode(fn, "my_ditto2", student, loss_fn, z0.clone(), iterations, lr, 2, None,
                                      dict(decode)), 2, "my_ditto2", "z, x0")
    settings = f"decode = {decode}"
    _compare(out[0], ref.z, f"the optimised z with {settings}", rtol=1e-4, atol=1e-5,
             hint=" The loop goes through the 1-step jump whatever the decode settings.")
    _compare(out[1], ref.x0, f"the decoded x0 with {settings}", rtol=1e-4, atol=1e-5,
             mistakes=_decode_settings_mistakes(student, ref.z, decode, 2))
    _passed(f"z and the 2-step decode match optimize.ditto2 ({iterations} iterations on small random "
            f"students), with the default decode and with {settings}")


def _refined_reference(student, loss_fn, z0, iterations, lr, decode_steps, via_decode, *, restart=False,
                       loop_kw=None, final_kw=None):
    """Adam on z where iteration ``it`` differentiates the ``decode_steps``-step decode if
    ``via_decode(it)``, else the 1-step jump; ``restart``: a new optimiser where the decode starts;
    ``loop_kw``/``final_kw``: decode settings in the loop and in the final decode."""
    def decode(z, steps, kw=None):
        return student_decode(student, z * student.sigma_max, steps, seed=0, **(kw or {}))

    z = z0.detach().clone()
    if restart:
        first = sum(not via_decode(it) for it in range(iterations))
        z, _ = _reference_optimise(lambda z: decode(z, 1), loss_fn, z, first, lr)
        z, _ = _reference_optimise(lambda z: decode(z, decode_steps), loss_fn, z, iterations - first, lr)
    else:
        calls = iter(range(iterations))
        z, _ = _reference_optimise(lambda z: decode(z, decode_steps, loop_kw) if via_decode(next(calls))
                                   else decode(z, 1), loss_fn, z, iterations, lr)
    with torch.no_grad():
        return z, decode(z, decode_steps, final_kw)


def check_refine_last(fn: Callable) -> None:
    """T06: ``fn(student, loss_fn, z0, iterations, lr, decode_steps, refine_last, tags=None, decode=None)
    -> (z, x0)`` vs :func:`ditto2_nb.optimize.ditto2` with ``OptimConfig(refine_last=R)``: the last R
    iterations differentiate the M-step decode, the others the 1-step jump, one Adam state throughout;
    the decode settings ``decode`` (None: the default) hold in the refinement iterations and in the
    final decode alike."""
    g = _gen()
    student, loss_fn, z0 = _tiny_ditto2_problem(g)
    iterations, lr, m = int(torch.randint(7, 10, (1,), generator=g)), 0.05, 2
    r = int(torch.randint(2, iterations - 3, (1,), generator=g))
    ref = ditto2(student, loss_fn, z0, decode_steps=m, decode_seed=0,
                 cfg=OptimConfig(iterations=iterations, lr=lr, snapshot_every=0, refine_last=r))
    z0_copy = z0.clone()
    out = _tuple_of(_call(fn, student, loss_fn, z0, iterations, lr, m, r), 2, "my_ditto2_refined", "z, x0")
    if not torch.equal(z0, z0_copy):
        raise TutorError("my_ditto2_refined changed z0 in place: optimise a copy.")
    first = iterations - r
    variants = [
        (f"the first R = {r} iterations went through the decode; refinement is the *last* R "
         f"(iterations {first}..{iterations - 1} of 0..{iterations - 1}).",
         dict(via_decode=lambda it: it < r)),
        (f"one iteration too many went through the decode ({r + 1} instead of R = {r}): with I = "
         f"{iterations}, the decode starts at iteration I - R = {first} (counting from 0).",
         dict(via_decode=lambda it: it >= first - 1)),
        (f"one iteration too few went through the decode ({r - 1} instead of R = {r}): with I = "
         f"{iterations}, the decode starts at iteration I - R = {first} (counting from 0).",
         dict(via_decode=lambda it: it > first)),
        ("no iteration went through the M-step decode: that is plain DITTO-2. The last R iterations must "
         "differentiate the decode itself.", dict(via_decode=lambda it: False)),
        ("every iteration went through the M-step decode: only the last R should (the others use the "
         "cheap 1-step jump).", dict(via_decode=lambda it: True)),
        ("Adam was restarted when the decode took over (two separate optimisation runs): its moment "
         "estimates must carry on, so use one loop whose generate(z) switches decoders (e.g. count its "
         "calls).", dict(via_decode=lambda it: it >= first, restart=True)),
    ]
    z_got = _as_tensor(out[0], "the optimised z").detach().cpu().double()
    # The typical mistakes only need running (a few small optimisations each) when z is wrong.
    cands = [] if _close(z_got, ref.z.double(), 1e-4, 1e-5) else [
        (msg, _refined_reference(student, loss_fn, z0, iterations, lr, m, **kw)[0]) for msg, kw in variants]
    with torch.no_grad():
        unscaled = student_decode(student, ref.z, m, seed=0)
    _compare(out[0], ref.z, f"the optimised z (I = {iterations}, R = {r})", rtol=1e-4, atol=1e-5,
             mistakes=cands,
             hint=" Iterations 0..I-R-1 differentiate student_decode(student, z * student.sigma_max, 1, "
                  "tags), "
                  "iterations I-R..I-1 the decode_steps-step decode (seed=0), all in one Adam loop.")
    _compare(out[1], ref.x0, "the decoded x0", rtol=1e-4, atol=1e-5, mistakes=[
        ("x0 is the 1-step surrogate: after the loop, decode once with decode_steps steps.",
         ref.x0_surrogate),
        ("decode from x_T = z · sigma_max.", unscaled)])
    student, decode = _decode_case(g)
    ref = ditto2(student, loss_fn, z0, decode_steps=m, decode_seed=0, **decode,
                 cfg=OptimConfig(iterations=iterations, lr=lr, snapshot_every=0, refine_last=r))
    out = _tuple_of(_call_with_decode(fn, "my_ditto2_refined", student, loss_fn, z0.clone(), iterations, lr,
                                      m, r, None, dict(decode)), 2, "my_ditto2_refined", "z, x0")
    settings = f"decode = {decode}"
    z_got = _as_tensor(out[0], "the optimised z").detach().cpu().double()
    if not _close(z_got, ref.z.double(), 1e-4, 1e-5):
        z_plain, _ = _refined_reference(student, loss_fn, z0, iterations, lr, m, lambda it: it >= first)
        if _close(z_got, z_plain.double(), 1e-4, 1e-5):  # the loop used the default decode
            with torch.no_grad():
                x_plain = student_decode(student, z_plain * student.sigma_max, m, seed=0)
            x_got = _as_tensor(out[1], "the decoded x0").detach().cpu().double()
            everywhere = _close(x_got, x_plain.double(), 1e-4, 1e-5)
            where = ("in the refinement iterations and in the final decode" if everywhere
                     else "in the refinement iterations (your final decode uses them)")
            raise TutorError(f"the optimised z with {settings} is not right: the `decode` settings are "
                             f"ignored {where}. The last R iterations must differentiate the very decode "
                             "that makes the output: student_decode(..., seed=0, **(decode or {})) in both "
                             "places.")
    _compare(out[0], ref.z, f"the optimised z with {settings} (I = {iterations}, R = {r})", rtol=1e-4,
             atol=1e-5)
    _compare(out[1], ref.x0, f"the decoded x0 with {settings}", rtol=1e-4, atol=1e-5,
             mistakes=_decode_settings_mistakes(student, ref.z, decode, m))
    _passed(f"z and x0 match optimize.ditto2(refine_last={r}) ({iterations} iterations, the last {r} through "
            f"the {m}-step decode, on small random students), with the default decode and with {settings}")


def predicted_speedup_reference(S: int, M: int, R: int, iterations: int, cfg_passes: int) -> float:
    """T06's cost model in forward passes of the network on the batch (a backward pass = 2):
    DITTO = I · 4S · c + S · c (checkpointed S-step sampler, c passes per guided evaluation, then
    the final sample); DITTO-2 = (I - R) · 3 + R · 3M + M (the 1-step jump, R iterations through the
    M-step decode, the final decode)."""
    ditto_cost = iterations * 4 * S * cfg_passes + S * cfg_passes
    ditto2_cost = (iterations - R) * 3 + R * 3 * M + M
    return ditto_cost / ditto2_cost


def check_predicted_speedup(fn: Callable) -> None:
    """T06: ``fn(S, M, R, iterations, cfg_passes) -> float``, the speed-up of DITTO-2 over DITTO that
    the cost model predicts (:func:`predicted_speedup_reference`), on random settings."""
    g = _gen()
    ri = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    cases = [(ri(5, 40), ri(2, 4), 0, ri(20, 100), 2), (ri(5, 40), ri(2, 4), ri(5, 15), ri(20, 100), 2),
             (ri(5, 40), ri(2, 4), ri(5, 15), ri(20, 100), 1), (ri(5, 40), 1, 0, ri(20, 100), 1)]
    got = []
    for S, M, R, n, c in cases:
        out = _call(fn, S, M, R, n, c, what=f"predicted_speedup(S={S}, M={M}, R={R}, iterations={n}, "
                                            f"cfg_passes={c})")
        if isinstance(out, (tuple, list, dict)):
            raise TutorError(f"predicted_speedup should return one number (DITTO's cost / DITTO-2's), got a "
                             f"{type(out).__name__}.")
        v = _as_tensor(out, "predicted_speedup's result").detach().double()
        if v.numel() != 1:
            raise TutorError(f"predicted_speedup should return one number, got {v.numel()} values.")
        got.append(v.reshape(()))
    got = torch.stack(got)

    def model(ditto_step=4, use_cfg=True, backward=2, refine=None, finals=True,
              final_grad=False, invert=False):
        vals = []
        for S, M, R, n, c in cases:
            c_d = c if use_cfg else 1
            d = n * ditto_step * S * c_d + (S * c_d if finals else 0)
            per = 1 + backward
            step2 = per * M if refine is None else refine(M)
            d2 = (n - R) * per + R * step2 + ((per if final_grad else 1) * M if finals else 0)
            vals.append(d2 / d if invert else d / d2)
        return torch.tensor(vals, dtype=torch.float64)

    want = model()
    mistakes = [
        ("the ratio is upside down: the speed-up is DITTO's cost divided by DITTO-2's (a number > 1 here).",
         model(invert=True)),
        ("guidance is missing from the ratio: every evaluation of DITTO's guided teacher runs the network "
         "on a conditional and an unconditional half, cfg_passes passes (T03), while DITTO-2's student "
         "needs no extra pass (guidance was distilled into it, T04).", model(use_cfg=False)),
        ("checkpointing's recomputation is missing: a checkpointed step runs its forward pass twice (once "
         "forward, once again in backward) plus its backward (2): 4 passes per step, not 3.",
         model(ditto_step=3)),
        ("a backward pass costs about 2 forward passes, not 1 (DITTO: 1 + 1 + 2 = 4 per step; DITTO-2: "
         "1 + 2 = 3 per iteration).", model(ditto_step=3, backward=1)),
        ("the refinement iterations are missing: each of the last R iterations runs the M-step decode "
         "forward and backward, 3M passes instead of 3.", model(refine=lambda M: 3)),
        ("a refinement iteration also runs backward: 3M passes (M forward + 2M backward), not M.",
         model(refine=lambda M: M)),
        ("the final outputs are missing: after the loop DITTO samples once more (S guided evaluations, "
         "no backward) and DITTO-2 decodes once (M passes, no backward).", model(finals=False)),
        ("the final decode needs no gradient: M forward passes, not 3M.", model(final_grad=True)),
    ]
    _compare(got, want, "the predicted speed-up (on 4 random settings)", rtol=1e-6, atol=1e-9,
             mistakes=mistakes, hint=" Count forward passes of the network on the batch: DITTO's I "
             "iterations and its final sample, DITTO-2's I iterations (R of them through the decode) and its "
             "final decode.")
    S, M, R, n, c = cases[1]
    _passed(f"your cost model matches on 4 random settings (e.g. S={S}, M={M}, R={R}, I={n}, with CFG: "
            f"{float(want[1]):.1f}x)")


# ============================================================================ T06 uses T05's decode choice

T05_STEM = "T05_ctm"


def decode_from_t05(artifacts_dir, preset: str, student: str, decode_steps: int) -> tuple[dict, str]:
    """The 2-step decode settings T05 recorded (``decode_pick_sigma_mid``, ``decode_pick_gamma``) in
    its ``metrics.json``, in the ``T05_ctm`` folder beside ``artifacts_dir`` (where T05 writes when run
    with its default ``ARTIFACTS_DIR``, and where the pipeline puts it), if they apply to this run:
    the same preset, the CTM student (the one T05 measured) and a 2-step decode.

    Returns ``(decode, reason)``: ``decode`` is ``{"sigma_mid": ..., "gamma": ...}`` or ``{}`` (the
    library's default) and ``reason`` says in one sentence which and why."""
    folder = Path(artifacts_dir).parent / T05_STEM
    default = "the library's default 2-step decode (decode_defaults(student), else the Karras midpoint)"
    try:  # what pipeline.record writes (pipeline.read_metrics; tutor sits below pipeline, so read it here)
        path = folder / "metrics.json"
        m = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(m, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return {}, f"{default}: T05's metrics in {folder} could not be read ({type(e).__name__})."
    if "decode_pick_sigma_mid" not in m or "decode_pick_gamma" not in m:
        return {}, (f"{default}: T05 has not recorded a pick in {folder} (run T05 to the end first to "
                    "decode with your own choice).")
    if m.get("decode_pick_preset") != preset:
        made = m.get("decode_pick_preset")
        return {}, (f"{default}: T05's pick was made on preset {made!r}" if made else
                    f"{default}: T05's pick does not say which preset it was made on") + \
            f", and this run uses {preset!r}, another model."
    if student != "ctm":
        return {}, f"{default}: T05 chose its decode for the CTM student, and STUDENT is {student!r}."
    if decode_steps != 2:
        return {}, f"{default}: T05 chose a 2-step decode, and DECODE_STEPS is {decode_steps}."
    try:
        decode = {"sigma_mid": float(m["decode_pick_sigma_mid"]), "gamma": float(m["decode_pick_gamma"])}
    except (TypeError, ValueError):
        return {}, f"{default}: T05's recorded pick is not a pair of numbers."
    return decode, (f"your T05 pick, sigma_mid = {decode['sigma_mid']:g}, gamma = {decode['gamma']:g} "
                    f"(read from {folder / 'metrics.json'}; same preset, same student).")
