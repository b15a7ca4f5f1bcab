"""Solutions to T08 (steer a melody).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T08_melody.ipynb``; the lines above the first section only make this file importable on its own.
"""

import torch

from ditto2_nb.audio import norm_to_power
from ditto2_nb.controls import chroma_matrix


# %% ex-chroma
def my_chroma(mel, cfg, temperature=1.0):
    """Pitch-class probabilities per frame: [B, n_mels, frames] -> [B, 12, frames] (softmax over the 12 classes)."""
    power = norm_to_power(mel, cfg)  # [B, n_mels, frames], undo the dB compression
    energy = torch.einsum("cm,bmt->bct", chroma_matrix(cfg).to(power), power)  # [B, 12, frames]
    return torch.softmax(torch.log10(energy + 1e-10) / temperature, dim=1)

# %% ex-melody-loss
def my_melody_loss(mel, target_pc, cfg, temperature=1.0):
    """Cross-entropy -ln p[target] averaged over the voiced frames (target >= 0): one value per example."""
    logp = torch.log(my_chroma(mel, cfg, temperature))  # [B, 12, frames]
    y = target_pc.to(mel.device).expand(len(mel), -1)  # [B, frames]; -1 = rest
    voiced = (y >= 0).to(logp.dtype)
    nll = -logp.gather(1, y.clamp_min(0)[:, None])[:, 0]  # [B, frames] (rests read class 0, then masked)
    return (nll * voiced).sum(-1) / voiced.sum(-1)
