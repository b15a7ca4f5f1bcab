"""Solutions to T03 (sampling).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T03_sampling.ipynb``; the lines above the first section only make this file importable on its own.
"""

import torch


# %% ex-euler
def my_euler_step(denoise, x, sigma, sigma_next):
    """One Euler step of dx/dsigma = (x - D(x, sigma)) / sigma from sigma to sigma_next."""
    d = (x - denoise(x, sigma)) / sigma  # slope at sigma
    return x + d * (sigma_next - sigma)

# %% ex-heun
def my_heun_step(denoise, x, sigma, sigma_next):
    """One Heun step: Euler predictor, then the average of the two slopes (Euler when sigma_next = 0)."""
    d = (x - denoise(x, sigma)) / sigma
    x_euler = x + d * (sigma_next - sigma)
    if sigma_next == 0:
        return x_euler
    d_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
    return x + 0.5 * (d + d_next) * (sigma_next - sigma)

# %% ex-guided
def my_guided(denoiser, x, sigma, tags, w):
    """Classifier-free guidance: D_uncond + w (D_cond - D_uncond); the unconditional pass sets every tag
    to 0 ("no tag"), so w = 0 is unconditional and w = 1 plain conditional."""
    d_cond = denoiser(x, sigma, tags)
    d_uncond = denoiser(x, sigma, torch.zeros_like(tags))
    return d_uncond + w * (d_cond - d_uncond)

# %% ex-heun-blowup
def predict_heun_blowup(sigmas):
    """The step whose Heun corrector amplifies an error of the denoiser most, and that gain.

    In step i the corrector uses d' = (x_e - D(x_e, σ_{i+1})) / σ_{i+1} and moves x by ½ d' (σ_{i+1} - σ_i):
    an error δ in D(x_e, σ_{i+1}) moves x_next by δ (σ_i - σ_{i+1}) / (2 σ_{i+1}). The last step, to σ = 0,
    has no corrector (it is Euler)."""
    gains = {i: float((sigmas[i] - sigmas[i + 1]) / (2 * sigmas[i + 1]))
             for i in range(len(sigmas) - 1) if sigmas[i + 1] > 0}
    step = max(gains, key=gains.get)
    return step, gains[step]
