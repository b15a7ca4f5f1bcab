"""Solutions to T02 (diffusion in a nutshell).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T02_diffusion_in_a_nutshell.ipynb``; the lines above the first section only make this file importable
on its own.
"""

import torch


# %% ex-edm-scalings
def my_edm_scalings(sigma, sigma_data):
    """EDM's c_skip, c_out, c_in (derived from the three conditions) and c_noise (given).

    Var(x) = sd² + σ² (x0 and n independent)                  -> c_in = 1 / sqrt(σ² + sd²)
    Var(x0 - c x) = (1 - c)² sd² + c² σ², minimal where its derivative -2 (1 - c) sd² + 2 c σ² = 0
                                                              -> c_skip = sd² / (σ² + sd²)
    its minimum, σ² sd² / (σ² + sd²), must be c_out²          -> c_out = σ sd / sqrt(σ² + sd²)
    """
    sd2 = sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * sigma_data / (sigma**2 + sd2).sqrt()
    c_in = 1.0 / (sigma**2 + sd2).sqrt()
    c_noise = torch.log(sigma) / 4.0
    return c_skip, c_out, c_in, c_noise

# %% ex-edm-loss
def my_edm_loss(denoise, x0, sigma, z, sigma_data):
    """Weighted denoising loss: mean of λ(σ) |D(x0 + σ z, σ) - x0|², with λ = 1 / c_out²: since
    D - x0 = c_out (F - target), λ (D - x0)² = (F - target)², the unit-variance regression."""
    x = x0 + sigma * z
    c_out = my_edm_scalings(sigma, sigma_data)[1]
    weight = 1.0 / c_out**2  # = (σ² + sd²) / (σ · sd)²
    return (weight * (denoise(x, sigma) - x0) ** 2).mean()
