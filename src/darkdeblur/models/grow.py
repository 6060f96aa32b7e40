"""Starting a refiner from one with another input or output layout.

A refiner trained on (blurred, deconvolved) can start a refiner that also sees the misfit
channel (``ModelConfig.inputs``), and one with the misfit a refiner that also sees the weak
deconvolution: the convolutions that read the raw input (the first layer, and the last one
through the full-resolution skip) get columns of zeros for the new channels, inserted where
they sit, just before the deconvolution's three. So the old inputs must be a prefix of the new
(``trainer.warm_start`` refuses others). The new network then computes exactly what the old one
did, and training decides what the channels are worth.

A refiner without a correction (``ModelConfig.correction = False``) outputs the fall-back share
alone: its last layer keeps the share's output (the last) of a refiner that had both. The other
way round, a share-only refiner starts one with a correction: the last layer gets zero rows for
the correction's outputs, so the new refiner starts as the old one (its correction zero). And a
refiner without the weak share (``ModelConfig.weak_mix``) starts one with it: the last layer gets
a zero row for the weak share, just before the fall-back share's, so the new one starts as it.
"""
from __future__ import annotations

import torch


def grow_input_channels(state: dict[str, torch.Tensor],
                        target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` fitted to ``target``'s shapes: a weight whose input dimension (dim 1) is
    smaller gets zero columns before its last three (its outputs, dim 0, are left as they are);
    returns (state, names of grown weights).
    Any other shape difference is left for the strict load to report."""
    grown, names = dict(state), []
    for name, tensor in state.items():
        wanted = target.get(name)
        if (wanted is None or tensor.dim() != 4 or wanted.shape[1:] == tensor.shape[1:]
                or wanted.shape[2:] != tensor.shape[2:]
                or not tensor.shape[1] < wanted.shape[1] or tensor.shape[1] < 3):
            continue
        extra = wanted.shape[1] - tensor.shape[1]
        zeros = torch.zeros(tensor.shape[0], extra, *tensor.shape[2:], dtype=tensor.dtype)
        grown[name] = torch.cat([tensor[:, :-3], zeros, tensor[:, -3:]], 1)
        names.append(name)
    return grown, names


def keep_share_output(state: dict[str, torch.Tensor],
                      target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` fitted to a target whose last layer outputs only the share: a weight or bias
    with 4 outputs where the target has 1 keeps its last; returns (state, names kept)."""
    kept, names = dict(state), []
    for name, tensor in state.items():
        wanted = target.get(name)
        if wanted is not None and tensor.dim() >= 1 and tensor.shape[0] == 4 and wanted.shape[0] == 1 \
                and tensor.shape[1:] == wanted.shape[1:]:
            kept[name] = tensor[-1:].clone()
            names.append(name)
    return kept, names


def add_correction_output(state: dict[str, torch.Tensor],
                          target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` of a share-only refiner fitted to a target with a correction: a weight or bias
    with 1 output where the target has 4 gets three zero outputs before it (the correction's);
    returns (state, names grown)."""
    grown, names = dict(state), []
    for name, tensor in state.items():
        wanted = target.get(name)
        if wanted is not None and tensor.dim() >= 1 and tensor.shape[0] == 1 and wanted.shape[0] == 4 \
                and tensor.shape[1:] == wanted.shape[1:]:
            grown[name] = torch.cat([torch.zeros(3, *tensor.shape[1:], dtype=tensor.dtype), tensor])
            names.append(name)
    return grown, names


def add_weak_share_output(state: dict[str, torch.Tensor],
                          target: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``state`` of a refiner without the weak share fitted to a target with it: a last-layer
    weight or bias (at most 4 outputs: the correction and the share) with one output fewer than
    the target's gets a zero output before its last (the fall-back share); returns (state, names
    grown)."""
    grown, names = dict(state), []
    for name, tensor in state.items():
        wanted = target.get(name)
        if wanted is not None and tensor.dim() >= 1 and tensor.shape[0] <= 4 \
                and wanted.shape[0] == tensor.shape[0] + 1 and tensor.shape[1:] == wanted.shape[1:]:
            zero = torch.zeros(1, *tensor.shape[1:], dtype=tensor.dtype)
            grown[name] = torch.cat([tensor[:-1], zero, tensor[-1:]])
            names.append(name)
    return grown, names
