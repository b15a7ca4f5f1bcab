"""Checks of T02 (diffusion in a nutshell) and T03 (sampling): EDM's scalings (against the library,
and against the conditions they are derived from, on sampled data), the EDM loss weight, one Euler
and one Heun step, where Heun's corrector amplifies the denoiser's error most, and classifier-free
guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...data.tags import tag_vocab
from ...diffusion.losses import edm_loss
from ...diffusion.precond import edm_scalings
from ...diffusion.samplers import guided, sample_euler, sample_heun
from ...diffusion.schedule import karras_sigmas, sample_log_normal_sigma
from .checking import (
    TutorError,
    _as_tensor,
    _call,
    _compare,
    _gen,
    _log_normal_sigmas,
    _needs_grad,
    _passed,
    _tiny_conditional_denoiser,
    _tuple_of,
)

# ============================================================================ T02 diffusion


def check_edm_scalings(fn: Callable) -> None:
    """T02: ``fn(sigma, sigma_data) -> (c_skip, c_out, c_in, c_noise)`` (EDM, Table 1)."""
    g = _gen()
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    sigma = _log_normal_sigmas(g, 12).view(-1, 1)  # [B, 1]
    out = _tuple_of(_call(fn, sigma.clone(), sd), 4, "my_edm_scalings", "c_skip, c_out, c_in, c_noise")
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    s2, d2 = sigma**2, sd**2
    what = f"(sigma_data = {sd:.3f})"
    _compare(out[0], c_skip, f"c_skip {what}", mistakes=[
        ("c_skip = sd² / (σ² + sd²): it must go to 1 as σ -> 0 (keep x when there is no noise); yours "
         "has σ² on top.", s2 / (s2 + d2))])
    _compare(out[1], c_out, f"c_out {what}", mistakes=[
        ("c_out = σ · sd / sqrt(σ² + sd²): the square root is missing.", sigma * sd / (s2 + d2)),
        ("c_out = σ · sd / sqrt(σ² + sd²): the factor sigma_data is missing.", sigma / (s2 + d2).sqrt()),
    ])
    _compare(out[2], c_in, f"c_in {what}", mistakes=[
        ("c_in is inverted: it is 1 / sqrt(σ² + sd²), which scales x to unit variance.", (s2 + d2).sqrt()),
        ("c_in = 1 / sqrt(σ² + sd²): the square root is missing.", 1.0 / (s2 + d2)),
    ])
    _compare(out[3], c_noise, f"c_noise {what}", mistakes=[
        ("c_noise = ln(σ) / 4: divide by 4.", sigma.log()),
        ("c_noise uses the natural log: ln(σ) / 4.", sigma.log10() / 4.0),
    ])
    _passed("c_skip, c_out, c_in and c_noise match precond.edm_scalings on 12 random noise levels")


def _exact_moments(g: torch.Generator, n: int, sd: float) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples of clean data x0 (skewed, not Gaussian) with mean 0 and variance exactly sd², and of
    noise with mean 0, variance exactly 1 and exactly no sample correlation with x0: on them every
    variance of the conditions is the one of the derivation, with no sampling error."""
    x0 = torch.randn(n, generator=g, dtype=torch.float64).exp()  # log-normal: only the variance matters
    x0 = x0 - x0.mean()
    x0 = x0 / x0.pow(2).mean().sqrt() * sd
    noise = torch.randn(n, generator=g, dtype=torch.float64)
    noise = noise - noise.mean()
    noise = noise - (noise @ x0) / (x0 @ x0) * x0
    return x0, noise / noise.pow(2).mean().sqrt()


def _per_level(value, k: int, what: str) -> torch.Tensor:
    """One value per noise level ``[k]`` (a single number counts for every level)."""
    t = _as_tensor(value, what).detach().double().cpu()
    if t.numel() == 1:
        return t.reshape(1).expand(k)
    if t.numel() != k:
        raise TutorError(f"{what} should hold one value per noise level: sigma had {k} levels (shape "
                         f"[{k}, 1]), {what} has shape {list(t.shape)}.")
    if not torch.isfinite(t).all():
        raise TutorError(f"{what} contains NaN or inf: a division by zero, or the log of 0?")
    return t.reshape(k)


def _variance(v: torch.Tensor) -> torch.Tensor:
    return (v - v.mean(-1, keepdim=True)).pow(2).mean(-1)


def check_edm_conditions(fn: Callable) -> None:
    """T02: the scalings of ``fn(sigma, sigma_data) -> (c_skip, c_out, c_in, c_noise)`` meet the
    conditions EDM derives them from, measured on sampled data ``x = x0 + σ n``: the network's input
    ``c_in x`` and its effective target ``(x0 - c_skip x) / c_out`` have unit variance, and no other
    c_skip gives ``x0 - c_skip x`` a smaller variance."""
    g = _gen()
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    bins = torch.tensor([-2.3, -1.3, -0.3, 0.5, 1.2, 1.9], dtype=torch.float64)  # log10 σ, 0.005 .. 80
    sigma = (10.0 ** (bins + 0.3 * torch.rand(6, generator=g, dtype=torch.float64))).view(-1, 1)
    k = len(sigma)
    out = _tuple_of(_call(fn, sigma.clone(), sd), 4, "my_edm_scalings", "c_skip, c_out, c_in, c_noise")
    c_skip, c_out, c_in = (_per_level(v, k, name) for v, name in zip(out[:3], ("c_skip", "c_out", "c_in")))
    x0, noise = _exact_moments(g, 4096, sd)
    s = sigma.view(-1)
    x = x0 + s[:, None] * noise  # [k, N]: one row of noisy samples per level
    levels = lambda i: f"σ = {float(s[i]):.3g} (sigma_data = {sd:.3f})"  # noqa: E731
    sd_x = (s**2 + sd**2).sqrt()

    # 1. c_in: the network's input has unit variance.
    v_in = _variance(c_in[:, None] * x)
    bad = (v_in - 1).abs() > 1e-3
    if bad.any():
        i = int(bad.nonzero()[0])
        if torch.allclose(c_in, 1 / sd_x**2, rtol=1e-3):
            why = (" Your c_in is 1 / Var(x): a variance is a squared scale, so dividing by it does not "
                   "give unit variance. Divide by the standard deviation.")
        elif torch.allclose(c_in, 1 / s, rtol=1e-3):
            why = (" Your c_in is 1 / σ: that ignores the data's own spread. x0 and n are independent, "
                   "so their variances add.")
        else:
            why = " What is Var(x) for x = x0 + σ n, with x0 and n independent?"
        raise TutorError(f"condition 1 fails: the network's input c_in · x has variance "
                         f"{float(v_in[i]):.4g} at {levels(i)}, not 1.{why}")

    # 2. c_skip: the smallest possible variance of x0 - c_skip x (so the smallest c_out).
    var_resid = lambda c: _variance(x0 - c[:, None] * x)  # noqa: E731
    delta = 1e-3
    f0, f_up, f_down = var_resid(c_skip), var_resid(c_skip + delta), var_resid(c_skip - delta)
    worse = (f_up < f0 * (1 - 1e-12)) | (f_down < f0 * (1 - 1e-12))
    if worse.any():
        i = int(worse.nonzero()[0])
        best = float(((x0 * x[i]).mean() - x0.mean() * x[i].mean()) / _variance(x[i]))
        direction = "larger" if float(f_up[i]) < float(f0[i]) else "smaller"
        if torch.allclose(c_skip, s**2 / sd_x**2, rtol=1e-3):
            why = (" Yours has σ² on top: at σ -> 0 there is no noise, so D should keep its input "
                   "(c_skip -> 1); at large σ the input is almost pure noise (c_skip -> 0).")
        elif torch.allclose(c_skip, torch.ones_like(c_skip), atol=1e-6):
            why = (" c_skip = 1 makes the network predict the (scaled) noise: a unit-variance target "
                   "with c_out = σ, which multiplies the network's errors by up to 80 at the top of "
                   "the grid. The variance can be smaller.")
        elif torch.allclose(c_skip, torch.zeros_like(c_skip), atol=1e-6):
            why = (" c_skip = 0 asks the network for x0 itself, even at tiny σ where x is almost "
                   "clean: it would have to rebuild every detail instead of a small correction.")
        else:
            why = ""
        raise TutorError(
            f"condition 3 fails at {levels(i)}: your c_skip = {float(c_skip[i]):.4g} does not make "
            f"Var(x0 - c_skip · x) as small as possible: a {direction} c_skip gives a smaller variance "
            f"(the smallest, {float(var_resid(torch.full((k,), best))[i]):.4g}, is at c_skip ≈ {best:.4g}; "
            f"yours gives {float(f0[i]):.4g}). A smaller variance means a smaller c_out, which "
            f"amplifies the network's errors less.{why} Write Var(x0 - c · x) as a function of c "
            "(x0 and n independent) and set its derivative in c to 0.")

    # 3. c_out: the effective target (x0 - c_skip x) / c_out has unit variance.
    v_target = _variance((x0 - c_skip[:, None] * x) / c_out[:, None])
    bad = (v_target - 1).abs() > 1e-3
    if bad.any():
        i = int(bad.nonzero()[0])
        if torch.allclose(c_out, f0, rtol=1e-3):
            why = (" Your c_out is the *variance* of x0 - c_skip · x: dividing by it does not give unit "
                   "variance. Divide by the standard deviation.")
        elif torch.allclose(c_out, s, rtol=1e-3):
            why = " c_out = σ would fit c_skip = 1 (noise prediction), not your c_skip."
        else:
            why = " c_out must be the standard deviation of x0 - c_skip · x, with your c_skip."
        raise TutorError(f"condition 2 fails: the effective target (x0 - c_skip · x) / c_out has variance "
                         f"{float(v_target[i]):.4g} at {levels(i)}, not 1.{why}")
    lo, hi = float(s[0]), float(s[-1])
    _passed(f"on {x.shape[1]} sampled points at {k} noise levels (σ = {lo:.3g} .. {hi:.3g}, "
            f"sigma_data = {sd:.2f}): c_in · x and the effective target have unit variance, and no other "
            "c_skip makes the target's spread smaller")


class _ToyF(nn.Module):
    """A random MLP F(u [B, D], c_noise [B, 1]) -> [B, D], standing in for the network."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.a = nn.Linear(dim + 1, 32).double()
            self.b = nn.Linear(32, dim).double()

    def forward(self, u: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(torch.cat([u, c_noise.expand(len(u), 1)], dim=1))))


def _toy_batch(g: torch.Generator, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    b = int(torch.randint(5, 12, (1,), generator=g))
    b += b == dim  # keep B != D so a wrong broadcast cannot hide
    x = torch.randn(b, dim, generator=g, dtype=torch.float64) * 2.0
    return x, _log_normal_sigmas(g, b).view(-1, 1)


def check_edm_loss(fn: Callable) -> None:
    """T02: ``fn(denoise, x0 [B, D], sigma [B, 1], z [B, D], sigma_data) -> scalar`` vs
    :func:`ditto2_nb.diffusion.losses.edm_loss` on the same random draws (the weight λ(σ) = 1 / c_out²
    is derived in the tutorial)."""
    g = _gen()
    seed = int(torch.randint(2**31, (1,), generator=g))
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    net = _ToyF(2, seed)
    x0, _ = _toy_batch(g)

    def denoise(x, sigma):  # the reference denoiser, sigma [B, 1]
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
        return c_skip * x + c_out * net(c_in * x, c_noise)

    gen = torch.Generator().manual_seed(seed)
    want = edm_loss(lambda x, s, tags: denoise(x, s.view(-1, 1)), x0, None, gen, sigma_data=sd)
    gen = torch.Generator().manual_seed(seed)  # the same draws, in the library's order
    sigma = sample_log_normal_sigma(len(x0), generator=gen).double().view(-1, 1)
    z = torch.randn(x0.shape, generator=gen).double()
    x = x0 + sigma * z
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    with torch.no_grad():
        d = denoise(x, sigma)
        mistakes = [
            ("looks like the weight λ(σ) = (σ² + sd²) / (σ · sd)² is missing.", ((d - x0) ** 2).mean()),
            ("compare D(x, σ) with the clean x0, not with the noisy x.", (weight * (d - x) ** 2).mean()),
            ("the weight is upside down: λ(σ) = (σ² + sd²) / (σ · sd)².", ((d - x0) ** 2 / weight).mean()),
            ("λ = 1 / c_out, not squared: D - x0 = c_out · (F - target), so (D - x0)² = c_out² · (F - "
             "target)² and λ = 1 / c_out².", (weight.sqrt() * (d - x0) ** 2).mean()),
            ("you summed: take the mean over all entries.", (weight * (d - x0) ** 2).sum()),
            ("add the noise: x = x0 + σ · z.", (weight * (denoise(x0 - sigma * z, sigma) - x0) ** 2).mean()),
        ]
    net.zero_grad()
    got = _call(fn, denoise, x0.clone(), sigma.clone(), z.clone(), sd)
    _compare(got, want, "my_edm_loss(denoise, x0, sigma, z, sigma_data)", rtol=1e-5, atol=1e-7,
             mistakes=mistakes)
    _needs_grad(got, "my_edm_loss", "the network's weights").backward()
    if net.a.weight.grad is None or float(net.a.weight.grad.abs().sum()) == 0:
        raise TutorError("my_edm_loss gives no gradient to the network's weights: call the denoiser "
                         "with gradients on (no torch.no_grad(), no .detach()).")
    _passed("your loss equals losses.edm_loss on the same σ and z, and it trains the network")


# ============================================================================ T03 sampling


def _toy_denoise(g: torch.Generator, shape: tuple[int, ...]) -> Callable:
    """A smooth random denoiser D(x, sigma) on tensors of ``shape`` (any sigma, float or tensor)."""
    a = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(shape, generator=g, dtype=torch.float64) * 0.5

    def denoise(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype)
        return torch.tanh(a * x + b) / (1.0 + s) + x / (1.0 + s**2)

    return denoise


def _step_cases(g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    s = float(0.5 + 20.0 * torch.rand(1, generator=g))
    cases = [(s, s * float(0.3 + 0.6 * torch.rand(1, generator=g))), (0.8, 0.3), (0.4, 0.0)]
    return [(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)) for a, b in cases]


def check_euler_step(fn: Callable) -> None:
    """T03: ``fn(denoise, x, sigma, sigma_next) -> x_next``, one Euler step of the PF-ODE."""
    g = _gen()
    shape = (3, 4, 6)
    denoise = _toy_denoise(g, shape)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3.0
    for sigma, sigma_next in _step_cases(g):
        want = sample_euler(denoise, x, torch.stack([sigma, sigma_next]))
        d = (x - denoise(x, sigma)) / sigma
        got = _call(fn, denoise, x.clone(), sigma, sigma_next)
        _compare(got, want, f"my_euler_step from σ={float(sigma):.3g} to σ_next={float(sigma_next):.3g}",
                 rtol=1e-6, atol=1e-8, mistakes=[
                     ("the step goes the wrong way: the slope is d = (x - D(x, σ)) / σ and the step is "
                      "x + d · (σ_next - σ) (σ_next - σ is negative).", x - d * (sigma_next - sigma)),
                     ("you returned the denoiser's estimate D(x, σ), not a step to σ_next.",
                      denoise(x, sigma)),
                     ("the slope is (x - D(x, σ)) / σ: divide by σ.",
                      x + (x - denoise(x, sigma)) * (sigma_next - sigma)),
                 ])
    _passed("your Euler step matches samplers.sample_euler on 3 steps (the last one to σ = 0)")


def check_heun_step(fn: Callable) -> None:
    """T03: ``fn(denoise, x, sigma, sigma_next) -> x_next``, one Heun step (Euler when sigma_next = 0)."""
    g = _gen()
    shape = (2, 5, 7)
    denoise = _toy_denoise(g, shape)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3.0
    for sigma, sigma_next in _step_cases(g):
        want = sample_heun(denoise, x, torch.stack([sigma, sigma_next]))
        dt = sigma_next - sigma
        d = (x - denoise(x, sigma)) / sigma
        x_e = x + d * dt
        mistakes = [("you returned the Euler predictor: Heun adds a corrector, the average of the slope at "
                     "σ and the slope d' = (x_e - D(x_e, σ_next)) / σ_next at the predictor x_e.", x_e)]
        if float(sigma_next) > 0:
            d_next = (x_e - denoise(x_e, sigma_next)) / sigma_next
            d_at_x = (x - denoise(x, sigma_next)) / sigma_next
            mistakes += [
                ("step with the average of both slopes, (d + d') / 2, not with d' alone.", x + d_next * dt),
                ("evaluate the second slope at the Euler predictor x_e, not at x.",
                 x + 0.5 * (d + d_at_x) * dt),
                ("the corrector step starts from x, not from the predictor x_e.",
                 x_e + 0.5 * (d + d_next) * dt),
                ("the step goes the wrong way: x + (d + d') / 2 · (σ_next - σ).",
                 x - 0.5 * (d + d_next) * dt),
            ]
        got = _call(fn, denoise, x.clone(), sigma, sigma_next)
        _compare(got, want, f"my_heun_step from σ={float(sigma):.3g} to σ_next={float(sigma_next):.3g}",
                 rtol=1e-6, atol=1e-8, mistakes=mistakes,
                 nonfinite="At σ_next = 0 there is no second slope (it divides by σ_next = 0): the last "
                           "step is a plain Euler step.")
    _passed("your Heun step matches samplers.sample_heun on 3 steps (the last one, to σ = 0, is Euler)")


def heun_blowup_reference(sigmas) -> tuple[int, float]:
    """T03: the step i of the grid ``sigmas`` (decreasing, ending in 0) whose Heun corrector
    amplifies an error of the denoiser the most, and that gain. In step i the corrector takes
    ``d' = (x_e - D(x_e, σ_{i+1})) / σ_{i+1}`` and moves x by ``½ d' (σ_{i+1} - σ_i)``, so an error δ
    in ``D(x_e, σ_{i+1})`` moves ``x_next`` by ``δ (σ_i - σ_{i+1}) / (2 σ_{i+1})``. A step to σ = 0 has
    no corrector (the library's Heun makes it Euler)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    best: tuple[int, float] | None = None
    for i in range(len(s) - 1):
        if float(s[i + 1]) <= 0:
            continue
        gain = float((s[i] - s[i + 1]) / (2 * s[i + 1]))
        if best is None or gain > best[1]:
            best = (i, gain)
    if best is None:
        raise ValueError("a grid with no corrector step (only a step to 0)")
    return best


def _blowup_grids(g: torch.Generator) -> list[torch.Tensor]:
    """The notebook's grid (N = 2), a random Karras grid (N = 3..6, other σ range and ρ) and a
    hand-made grid where the largest step, the smallest σ_next and the largest ratio are three
    different steps."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(1, generator=g))  # noqa: E731
    n = int(torch.randint(3, 7, (1,), generator=g))
    karras = karras_sigmas(n, u(0.001, 0.05), u(20.0, 120.0), u(3.0, 9.0)).double()
    a = u(40.0, 100.0)
    b = a * u(0.25, 0.35)        # the largest step: a -> b
    c = b / u(20.0, 40.0)        # the largest ratio: b -> c
    d = c * u(0.5, 0.8)          # the smallest σ_next > 0: c -> d
    hand = torch.tensor([a, b, c, d, 0.0], dtype=torch.float64)
    return [karras_sigmas(2, 0.002, 80.0).double(), karras, hand]


def _fmt_grid(s: torch.Tensor) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in s) + "]"


def check_heun_blowup(fn: Callable) -> None:
    """T03: ``fn(sigmas) -> (step, gain)``: the step whose Heun corrector amplifies an error of the
    denoiser most, and the gain (:func:`heun_blowup_reference`), on three grids built so that the
    usual wrong rules (the largest step, the smallest σ_next, the last step, the level's index instead
    of the step's) give different answers."""
    g = _gen()
    grids = _blowup_grids(g)
    wants = [heun_blowup_reference(s) for s in grids]
    steps, gains = [], []
    for s in grids:
        try:
            out = _call(fn, s.clone(), what=f"predict_heun_blowup({_fmt_grid(s)})")
        except TutorError as e:
            if "ZeroDivisionError" in str(e) or "division by zero" in str(e):
                raise TutorError(f"{e} The last step ends at σ = 0: the library's Heun has no corrector "
                                 "there (it is a plain Euler step), so leave that step out.") from None
            raise
        step, gain = _tuple_of(out, 2, "predict_heun_blowup", "the step index, its gain")
        try:
            step_f = float(step)
        except (TypeError, ValueError, RuntimeError):
            raise TutorError(f"the step should be one integer (an index into the steps), got "
                             f"{type(step).__name__}.") from None
        if step_f != int(step_f):
            raise TutorError(f"the step should be an integer index, got {step_f:g}.")
        steps.append(int(step_f))
        gains.append(gain)
    want_steps = [w[0] for w in wants]
    if steps != want_steps:
        corrector = lambda s: [i for i in range(len(s) - 1) if float(s[i + 1]) > 0]  # noqa: E731
        rules = [
            ([len(s) - 2 for s in grids],
             "the last step ends at σ = 0 and has no corrector: the library's Heun makes it a plain "
             "Euler step (section 2), so nothing is divided by σ_next there. Only steps with "
             "σ_next > 0 count."),
            ([w + 1 for w in want_steps],
             "your answers are one too high: they look like the index of the level σ_{i+1} where the "
             "corrector evaluates D, but steps are numbered by where they start (step i goes from "
             "sigmas[i] to sigmas[i + 1])."),
            ([max(corrector(s), key=lambda i, s=s: float(s[i] - s[i + 1])) for s in grids],
             "that is the step with the largest σ_i - σ_{i+1}. A large step alone is harmless; what "
             "matters is how large the step is compared with the σ_next the corrector divides by."),
            ([min(corrector(s), key=lambda i, s=s: float(s[i + 1])) for s in grids],
             "that is the step with the smallest σ_next > 0. Dividing by a small σ_next is only half "
             "the story: the slope d' is then multiplied by the step's length (σ_i - σ_{i+1}) / 2, and a "
             "short step to a small σ_next is harmless."),
        ]
        for answers, why in rules:
            if steps == answers:
                raise TutorError(f"not the step whose corrector amplifies the denoiser's error most: {why}")
        i = next(j for j in range(len(grids)) if steps[j] != want_steps[j])
        raise TutorError(f"on the grid {_fmt_grid(grids[i])} the corrector that amplifies an error of "
                         f"D(x_e, σ_next) most is in step {want_steps[i]} (gain {wants[i][1]:.4g}); you "
                         f"returned step {steps[i]}. Step i goes from sigmas[i] to sigmas[i + 1]; find "
                         "how much an error δ in D(x_e, sigmas[i + 1]) moves x_next, for every step "
                         "that has a corrector.")
    got = torch.stack([_as_tensor(v, "the gain").detach().double().reshape(-1)[0] for v in gains])
    want = torch.tensor([w[1] for w in wants], dtype=torch.float64)
    s_i = torch.stack([s[i] for s, (i, _) in zip(grids, wants)])
    s_n = torch.stack([s[i + 1] for s, (i, _) in zip(grids, wants)])
    _compare(got, want, "the gains (on the 3 grids)", rtol=1e-4, atol=1e-6, mistakes=[
        ("that is the ratio σ_i / σ_{i+1}. Follow δ through the corrector: d' changes by -δ / σ_{i+1}, "
         "and d' enters x_next as ½ d' (σ_{i+1} - σ_i).", s_i / s_n),
        ("the corrector *averages* the two slopes: d' enters x_next with a factor ½.", (s_i - s_n) / s_n),
        ("1 / σ_{i+1} is how much d' changes; x_next changes by that times ½ (σ_i - σ_{i+1}).", 1 / s_n),
        ("that is the gain of an error in D(x, σ_i), the predictor's slope: the corrector divides by "
         "σ_{i+1}.", (s_i - s_n) / (2 * s_i)),
    ], hint=" The gain is |∂x_next / ∂D(x_e, σ_{i+1})| for one entry, from the Heun step of section 2.")
    _passed(f"the right step and gain on 3 grids; on [80, 0.002, 0] step {wants[0][0]} amplifies the "
            f"denoiser's error about {float(f'{wants[0][1]:.2g}'):,.0f} times")


def check_guided(fn: Callable) -> None:
    """T03: ``fn(denoiser, x, sigma, tags, w) -> D_w(x, sigma)``, classifier-free guidance
    ``D_uncond + w (D_cond - D_uncond)`` (the unconditional pass: every tag 0), against
    :func:`ditto2_nb.diffusion.guided`; sigma a scalar or one level per example ``[B]``."""
    g = _gen()
    model = _tiny_conditional_denoiser(int(torch.randint(2**31, (1,), generator=g)))
    b, frames = 3, 16
    vocab = torch.tensor(tag_vocab())
    tags = (torch.rand(b, len(vocab), generator=g) * (vocab - 1)).long() + 1  # every field set
    x = torch.randn(b, model.cfg.n_mels, frames, generator=g) * 2.0
    w_main = float(1.5 + 2.5 * torch.rand(1, generator=g))
    sigma_scalar = torch.tensor(float(0.3 + 5.0 * torch.rand(1, generator=g)))
    sigma_each = _log_normal_sigmas(g, b).float() + 0.05
    cases = [(w_main, sigma_scalar), (float(1.5 + 2.5 * torch.rand(1, generator=g)), sigma_each),
             (0.0, sigma_scalar), (1.0, sigma_each)]
    for w, sigma in cases:
        with torch.no_grad():
            want = guided(model, tags, w)(x, sigma)
            d_cond, d_uncond = model(x, sigma, tags), model(x, sigma, torch.zeros_like(tags))
        mistakes = [
            ("the weights are swapped: D_w = D_uncond + w · (D_cond - D_uncond), so that w = 0 is "
             "unconditional and w = 1 plain conditional; yours gives the unconditional prediction at w = 1.",
             d_cond + w * (d_uncond - d_cond)),
            ("that is the other convention, D_cond + w · (D_cond - D_uncond) (its w is this one's w - 1): "
             "here w = 1 must give plain conditional denoising, D_w = D_uncond + w · (D_cond - D_uncond).",
             d_cond + w * (d_cond - d_uncond)),
            ("the unconditional prediction is missing: D_w = D_uncond + w · (D_cond - D_uncond), with "
             "D_uncond = denoiser(x, sigma, tags of zeros).", w * d_cond),
            ("you returned only the guidance direction w · (D_cond - D_uncond): add D_uncond.",
             w * (d_cond - d_uncond)),
            ("you returned the conditional prediction: with w != 1, guidance moves it away from the "
             "unconditional one, D_uncond = denoiser(x, sigma, tags of zeros).", d_cond),
            ("you returned the unconditional prediction: with w != 0 the conditional one, "
             "denoiser(x, sigma, tags), counts too.", d_uncond),
        ]
        where = "a single σ" if sigma.ndim == 0 else "one σ per example [B]"
        x_in = x.clone().requires_grad_(True)
        try:
            got = _call(fn, model, x_in, sigma.clone(), tags.clone(), w)
        except TutorError as e:
            if sigma.ndim == 0:
                raise
            first = str(e).split(" Hint:")[0]
            raise TutorError(f"{first} Here sigma is one noise level per example, shape [B] = [{b}]: a "
                             "batched pass over torch.cat([x, x]) needs torch.cat([sigma, sigma]) too (or "
                             "run the two passes separately).") from None
        _compare(got, want, f"my_guided(..., w={w:.3g}) with {where}", rtol=1e-4, atol=1e-5,
                 mistakes=mistakes, hint=" D_w = D_uncond + w · (D_cond - D_uncond); the unconditional "
                                         "pass gives the denoiser tags of zeros (0 = no tag).")
        _needs_grad(got, "my_guided", "x (DITTO backpropagates through the guided denoiser)")
    _passed(f"D_w matches diffusion.guided for w = {w_main:.2f}, {cases[1][0]:.2f}, 0 (unconditional) "
            "and 1 (conditional), with one σ and with one σ per example")
