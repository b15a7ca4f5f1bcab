"""Solutions to T07 (design your own control).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T07_your_own_control.ipynb``; the lines above the first section only make this file importable on its
own.
"""

import torch

from ditto2_nb.audio import norm_to_power
from ditto2_nb.controls import mel_centre_hz


# %% ex-brightness
def my_brightness(mel, cfg):
    """Spectral centroid in Hz per frame: [B, M, T] -> [B, T], power-weighted."""
    power = norm_to_power(mel, cfg)  # [B, M, T]
    centres = mel_centre_hz(cfg).to(mel)  # [M] Hz
    return (power * centres[:, None]).sum(1) / power.sum(1).clamp_min(1e-12)

# %% ex-brightness-loss
def make_brightness_loss(target_hz, cfg):
    """A control loss: the distance in octaves is log2(centroid / target) (a factor 2 = 1 octave, at any
    frequency); its square, averaged over frames, one value per example."""
    log_target = torch.log2(torch.as_tensor(target_hz, dtype=torch.float32))

    def loss(mel):
        log_c = torch.log2(my_brightness(mel, cfg))  # [B, T]
        return (log_c - log_target.to(log_c)).pow(2).mean(-1)  # [B]

    return loss
