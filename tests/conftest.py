"""Shared fixtures. Tests use a private cache folder so they never touch the user's cache."""

import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    if "DITTO2_TEST_CACHE" in os.environ:  # reuse across runs when asked to (local speed-up)
        os.environ["DITTO2_CACHE"] = os.environ["DITTO2_TEST_CACHE"]
    else:
        os.environ["DITTO2_CACHE"] = str(tmp_path_factory.mktemp("ditto2_cache"))
    yield


@pytest.fixture(scope="session")
def music_clips():
    """Four rendered procedural clips of the laptop length, ``[4, L]``."""
    from ditto2_nb.core.config import MelConfig
    from ditto2_nb.data import generate_clips

    waves, _ = generate_clips(4, 0, MelConfig(frames=128))
    return torch.as_tensor(waves)
