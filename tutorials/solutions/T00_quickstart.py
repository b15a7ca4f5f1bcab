"""Solutions to T00 (quickstart).

Each ``# %% <cell id>`` section is the solution of the exercise cell with that id in
``T00_quickstart.ipynb``; the lines above the first section only make this file importable on its own.
"""

from ditto2_nb.controls import from_points


# %% ex-swell
def my_swell(frames):
    """A dB curve [frames]: quiet (-30 dB), loudest (-10 dB) in the middle, quiet again at the end."""
    return from_points([(0.0, -30.0), (0.5, -10.0), (1.0, -30.0)], frames)
