"""ditto2_nb: DITTO-2 (controllable music generation by optimising a distilled diffusion model's
initial noise), as notebooks and a light library."""
