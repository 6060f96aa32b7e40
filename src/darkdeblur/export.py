"""Exporting a generator to ONNX, for ONNX Runtime and other runtimes without PyTorch.

The graph takes ``blurred`` (B, 3, H, W) float32 in [0, 1] and returns ``restored`` of the same
shape and range, with batch, height and width dynamic: the padding to a multiple of
``generator.multiple`` and the crop back happen inside the graph, as in PyTorch.

The exporter traces one example. Its size is deliberately not a multiple of the padding
multiple, so the traced graph keeps the padding step (with amounts computed from the input's
shape) instead of the no-padding shortcut; padding an input that needs none adds zero rows.
What tracing does fix is the padding mode, reflection: inputs need height and width of at least
``generator.multiple`` (32 for the bundled model), where PyTorch would switch to replication.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .safe_files import atomic_write

DEFAULT_OPSET = 17


def export_onnx(generator: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``generator`` (left in eval mode, on its device) as an ONNX file; return the path."""
    path = Path(path)
    generator.eval()
    multiple = getattr(generator, "multiple", 1)
    parameter = next(generator.parameters())
    example = torch.rand(1, 3, 2 * multiple + 3, 2 * multiple + 5, generator=torch.Generator().manual_seed(0))
    dynamic = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the shape arithmetic above
            torch.onnx.export(generator, (example.to(parameter.device, parameter.dtype),), tmp,
                              dynamo=False, input_names=["blurred"], output_names=["restored"],
                              dynamic_axes={"blurred": dynamic, "restored": dynamic},
                              opset_version=opset)

    atomic_write(path, write)
    return path
