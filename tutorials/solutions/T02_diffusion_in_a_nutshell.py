"""Solutions to T02 (diffusion in a nutshell).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T02_diffusion_in_a_nutshell.ipynb``; the lines above the first section only make this file importable
on its own.
"""

import torch


# %% ex-edm-scalings
def my_edm_scalings(sigma, sigma_data):
    """EDM's c_skip, c_out, c_in, c_noise for noise levels sigma (any shape)."""
    sd2 = sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * sigma_data / (sigma**2 + sd2).sqrt()
    c_in = 1.0 / (sigma**2 + sd2).sqrt()
    c_noise = torch.log(sigma) / 4.0
    return c_skip, c_out, c_in, c_noise

# %% ex-denoiser
def my_denoise(F, x, sigma, sigma_data):
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise); x [B, D], sigma [B, 1]."""
    c_skip, c_out, c_in, c_noise = my_edm_scalings(sigma, sigma_data)
    return c_skip * x + c_out * F(c_in * x, c_noise)

# %% ex-edm-loss
def my_edm_loss(denoise, x0, sigma, z, sigma_data):
    """Weighted denoising loss: mean of lambda(sigma) |D(x0 + sigma z, sigma) - x0|^2."""
    x = x0 + sigma * z
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    return (weight * (denoise(x, sigma) - x0) ** 2).mean()
