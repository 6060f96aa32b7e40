"""Device names a user types (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) -> torch devices."""
from __future__ import annotations

import torch

NAMES = "auto, cpu, cuda, cuda:N or mps"


class DeviceError(ValueError):
    """A device name that cannot be used on this machine (a usage error)."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; other names must exist on this machine."""
    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch lists every backend it was built with: too long for one line
        raise DeviceError(f"--device {name}: unknown device; use {NAMES}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise DeviceError(f"--device {name}: MPS is not available on this machine (Apple GPUs only)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"--device {name}: not supported; use {NAMES}")
    return device
