"""How a generator behaves when it restores photos: eval mode, or the reference code's way.

``running``: ``module.eval()``. BatchNorm normalises with the running statistics gathered in
training, dropout is off; the output depends on the image alone and is deterministic.

``batch``: what the paper's reference code (pix2pix lineage) does at test time. BatchNorm
normalises each batch with its own statistics and dropout stays on, so outputs are random (seed
torch's global generator to repeat them) and depend on what else is in the batch and, with
tiling, on the tile. The running statistics are left untouched.
"""
from __future__ import annotations

from torch import nn

TEST_MODES = ("running", "batch")

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_DROPOUTS = (nn.Dropout, nn.Dropout2d, nn.Dropout3d)


def set_test_mode(generator: nn.Module, mode: str) -> nn.Module:
    """Put ``generator`` into test-time ``mode`` ("running" or "batch") in place; return it.

    Call it after loading and before restoring. ``set_test_mode(generator, "running")`` undoes
    batch mode (its BatchNorm layers stop tracking running statistics until then, also under
    ``generator.train()``).
    """
    if mode not in TEST_MODES:
        raise ValueError(f"unknown test mode {mode!r}; choose {' or '.join(TEST_MODES)}")
    generator.eval()
    for module in generator.modules():
        if isinstance(module, _NORMS):
            # Batch statistics without updating the running ones: train mode with tracking off.
            module.track_running_stats = mode == "running"
            module.train(mode == "batch")
        elif isinstance(module, _DROPOUTS):
            module.train(mode == "batch")
    return generator
