"""Numeric contracts of the noise grid and the preconditioning."""

import math

import pytest
import torch

from ditto2_nb.diffusion import (
    consistency_scalings,
    ctm_jump,
    edm_scalings,
    karras_sigmas,
    sample_log_normal_sigma,
)

SD = 0.5


def test_karras_grid_endpoints_and_monotone():
    s = karras_sigmas(18, 0.002, 80.0)
    assert s.shape == (19,)
    assert math.isclose(s[0].item(), 80.0, rel_tol=1e-5)
    assert math.isclose(s[-2].item(), 0.002, rel_tol=1e-4)
    assert s[-1].item() == 0.0
    assert (s[:-1] > s[1:]).all()


def test_karras_grid_rejects_bad_ranges():
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(10, 1.0, 0.5)
    with pytest.raises(ValueError, match="at least one"):
        karras_sigmas(0)


def test_edm_scalings_closed_forms():
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0])
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, SD)
    # unit variance of the training target: c_skip^2 sd^2 + c_out^2 ... (EDM eq. 7 identities)
    torch.testing.assert_close(c_skip + c_out**2 / SD**2, torch.ones(4))
    torch.testing.assert_close(c_in**2 * (SD**2 + sigma**2), torch.ones(4))
    torch.testing.assert_close(c_noise, sigma.log() / 4)


def test_edm_denoiser_is_identity_as_sigma_vanishes():
    c_skip, c_out, _, _ = edm_scalings(torch.tensor(1e-6), SD)
    assert abs(c_skip.item() - 1) < 1e-9 and abs(c_out.item()) < 1e-5


def test_consistency_boundary_is_exact():
    eps = 0.002
    c_skip, c_out = consistency_scalings(torch.tensor(eps), SD, eps)
    assert c_skip.item() == 1.0 and c_out.item() == 0.0
    c_skip, c_out = consistency_scalings(torch.tensor(10.0), SD, eps)
    assert c_skip.item() < 0.01 and c_out.item() > 0.49


def test_ctm_jump_identity_and_endpoints():
    x, g = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    t = torch.tensor(3.0)
    torch.testing.assert_close(ctm_jump(x, g, t, t), x)
    torch.testing.assert_close(ctm_jump(x, g, t, torch.tensor(0.0)), g)


def test_log_normal_sigma_statistics():
    s = sample_log_normal_sigma(20000, -1.2, 1.2, torch.Generator().manual_seed(0))
    assert abs(s.log().mean().item() + 1.2) < 0.05
    assert abs(s.log().std().item() - 1.2) < 0.05
