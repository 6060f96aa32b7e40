"""Every random generator a training run draws from: seeding them, saving them, restoring them.

Exact resume needs Python's, NumPy's and torch's global generators (dropout, cuDNN choices,
Python-side shuffles) and the run's own ``torch.Generator`` objects (device-side noise) to
continue exactly where a checkpoint left them.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def random_states(*generators: torch.Generator) -> dict:
    """The state of Python's, NumPy's and torch's global generators and of ``generators``.

    Plain lists, tuples and tensors only, so a checkpoint holding it loads with ``weights_only``.
    """
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": [g.get_state() for g in generators]}


def restore_random_states(states: dict, *generators: torch.Generator) -> None:
    """Undo :func:`random_states`: every generator continues where it was.

    >>> noise = torch.Generator().manual_seed(1)
    >>> saved = random_states(noise)
    >>> first = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=noise).item())
    >>> restore_random_states(saved, noise)
    >>> first == (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=noise).item())
    True
    """
    random.setstate(_as_tuple(states["python"]))
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for generator, state in zip(generators, states["generators"], strict=True):
        generator.set_state(state)


def _as_tuple(value):
    """Python's state is nested tuples; a checkpoint round trip may hand back lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
