"""One contract for every sampler, checked against an analytic Gaussian denoiser."""

import pytest
import torch

from ditto2_nb.diffusion import SAMPLERS, get_sampler, guided, karras_sigmas, nfe_per_sample, seeded_noise

DATA_STD = 0.5


def gaussian_denoiser(x, sigma):
    """Exact E[x0 | x] when x0 ~ N(0, DATA_STD^2 I)."""
    return DATA_STD**2 / (DATA_STD**2 + sigma**2) * x


def fixed_noise(seed):
    gen = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(x.shape, generator=gen)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_shapes_and_determinism(name):
    sampler, sigmas = get_sampler(name), karras_sigmas(10)
    x_T = torch.randn(3, 8, 16, generator=torch.Generator().manual_seed(1)) * sigmas[0]
    a = sampler(gaussian_denoiser, x_T, sigmas, noise_fn=fixed_noise(7))
    b = sampler(gaussian_denoiser, x_T, sigmas, noise_fn=fixed_noise(7))
    assert a.shape == x_T.shape and a.dtype == x_T.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_gaussian_data_gives_right_std(name):
    # first-order samplers undershoot the std at few steps; give them a fine grid
    sigmas = karras_sigmas(40 if name == "heun" else 400)
    x_T = torch.randn(64, 32, 32, generator=torch.Generator().manual_seed(2)) * sigmas[0]
    x0 = get_sampler(name)(gaussian_denoiser, x_T, sigmas, noise_fn=fixed_noise(3))
    assert abs(x0.std().item() - DATA_STD) < 0.03 * DATA_STD


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_gradients_reach_x_T(name):
    sigmas = karras_sigmas(6)
    x_T = (torch.randn(2, 4, 8) * sigmas[0]).requires_grad_()
    get_sampler(name)(gaussian_denoiser, x_T, sigmas, noise_fn=fixed_noise(0)).sum().backward()
    assert x_T.grad is not None and torch.isfinite(x_T.grad).all() and x_T.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_callback_sees_every_step_and_nfe(name):
    calls, sigmas, nfe = [], karras_sigmas(5), [0]

    def counting(x, sigma):
        nfe[0] += 1
        return gaussian_denoiser(x, sigma)

    get_sampler(name)(counting, torch.randn(1, 2, 4) * 80, sigmas,
                      callback=lambda i, s, x, d: calls.append(i), noise_fn=fixed_noise(0))
    assert calls == list(range(5))
    assert nfe[0] == nfe_per_sample(name, 5)


def test_heun_beats_euler_at_equal_steps():
    sigmas = karras_sigmas(18)
    x_T = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(4)) * sigmas[0]
    exact = x_T * DATA_STD / (DATA_STD**2 + sigmas[0] ** 2).sqrt()  # closed-form ODE solution
    err = {n: (get_sampler(n)(gaussian_denoiser, x_T, sigmas) - exact).abs().max().item()
           for n in ("euler", "heun")}
    assert err["heun"] < 0.5 * err["euler"]


def test_unknown_sampler_message():
    with pytest.raises(ValueError, match="choose one of"):
        get_sampler("dpm++")


def test_guidance_combines_conditional_and_unconditional():
    def model(x, sigma, tags):
        return x + tags.float().sum(1).view(-1, 1, 1)  # "conditional" shift by the tag sum

    tags = torch.tensor([[1, 2]])
    x = torch.zeros(1, 2, 2)
    torch.testing.assert_close(guided(model, tags, w=1.0)(x, 1.0), x + 3)
    torch.testing.assert_close(guided(model, tags, w=2.0)(x, 1.0), x + 6)
    torch.testing.assert_close(guided(model, tags, w=0.0)(x, 1.0), x)


def test_seeded_noise_is_batch_size_independent():
    a = seeded_noise([5, 6, 7], (4, 4))
    b = seeded_noise([6], (4, 4))
    torch.testing.assert_close(a[1], b[0], rtol=0, atol=0)
