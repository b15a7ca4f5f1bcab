"""Checks of T02 (diffusion in a nutshell) and T03 (sampling): EDM preconditioning, the denoiser,
the EDM loss, one Euler and one Heun step, and classifier-free guidance."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...data.tags import tag_vocab
from ...diffusion.losses import edm_loss
from ...diffusion.precond import edm_scalings
from ...diffusion.samplers import guided, sample_euler, sample_heun
from ...diffusion.schedule import sample_log_normal_sigma
from .checking import (
    TutorError,
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


def check_denoiser(fn: Callable) -> None:
    """T02: ``fn(F, x [B, D], sigma [B, 1], sigma_data) -> D(x, sigma)``, the preconditioned denoiser
    ``c_skip x + c_out F(c_in x, c_noise)``."""
    g = _gen()
    sd = 0.3 + 0.7 * float(torch.rand(1, generator=g))
    net = _ToyF(2, int(torch.randint(2**31, (1,), generator=g)))
    x, sigma = _toy_batch(g)
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sd)
    with torch.no_grad():
        want = c_skip * x + c_out * net(c_in * x, c_noise)
        mistakes = [
            ("looks like c_skip * x is missing: D = c_skip · x + c_out · F(c_in · x, c_noise).",
             c_out * net(c_in * x, c_noise)),
            ("looks like c_out is missing in front of F(...).", c_skip * x + net(c_in * x, c_noise)),
            ("F must see the scaled input c_in · x, not x itself.", c_skip * x + c_out * net(x, c_noise)),
            ("F's second input is c_noise = ln(σ) / 4, not σ.", c_skip * x + c_out * net(c_in * x, sigma)),
            ("the skip term is c_skip · x; yours multiplies the noisy x by c_out.",
             c_out * x + c_skip * net(c_in * x, c_noise)),
        ]
        got = _call(fn, net, x.clone(), sigma.clone(), sd)
    _compare(got, want, "my_denoise(F, x, sigma, sigma_data)", rtol=1e-5, atol=1e-6, mistakes=mistakes)
    _passed(f"D(x, σ) = c_skip·x + c_out·F(c_in·x, c_noise) matches on a random network (B = {len(x)})")


def check_edm_loss(fn: Callable) -> None:
    """T02: ``fn(denoise, x0 [B, D], sigma [B, 1], z [B, D], sigma_data) -> scalar`` vs
    :func:`ditto2_nb.diffusion.losses.edm_loss` on the same random draws."""
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
