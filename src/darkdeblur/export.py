"""Exporting a generator to ONNX, for ONNX Runtime and other runtimes without PyTorch.

The graph takes ``blurred`` (B, 3, H, W) float32 in [0, 1] and returns ``restored`` of the same
shape and range, with batch, height and width dynamic: the padding to a multiple of
``generator.multiple`` and the crop back happen inside the graph, as in PyTorch.

The exporter traces one example. Its size is deliberately not a multiple of the padding
multiple, so the traced graph keeps the padding step (with amounts computed from the input's
shape) instead of the no-padding shortcut; padding an input that needs none adds zero rows.
What tracing does fix is the padding mode, reflection: inputs need height and width of at least
``generator.multiple`` (32 for the bundled model), where PyTorch would switch to replication.

The file says all this itself: its ``metadata_props`` hold the input and output convention
(``INPUT_CONVENTION``), the darkdeblur version and, given ``cfg``, the config the generator was
built from (JSON, as in the weights file), so a runtime needs neither this package nor its docs.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .config import RunConfig
from .safe_files import atomic_write

DEFAULT_OPSET = 17

INPUT_CONVENTION = {
    "input": "blurred: float32 (batch, 3, height, width), NCHW, RGB, values in [0, 1]",
    "output": "restored: float32, the input's shape, layout (NCHW), channels (RGB) and range [0, 1]",
    "dynamic_axes": "batch, height, width",
    "value_range": "[0, 1]",
    "layout": "NCHW",
    "channels": "RGB",
    "test_mode": "running (BatchNorm running statistics, no dropout)",
}


def onnx_metadata(generator: nn.Module, cfg: RunConfig | None = None) -> dict[str, str]:
    """What the exported file carries in ``metadata_props`` (strings only).

    >>> onnx_metadata(nn.Identity())["layout"]
    'NCHW'
    """
    multiple = getattr(generator, "multiple", 1)
    meta = {**INPUT_CONVENTION, "min_height_width": str(multiple), "darkdeblur_version": __version__}
    if cfg is not None:
        meta["config"] = json.dumps(cfg.to_dict())
        meta["preset"] = cfg.preset
    return meta


def export_onnx(generator: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                cfg: RunConfig | None = None) -> Path:
    """Write ``generator`` (left in eval mode, on its device) as an ONNX file; return the path.

    ``cfg``, the config the generator was built from, goes into the file's metadata with the
    input convention (:func:`onnx_metadata`).
    """
    try:
        import onnx
    except ImportError:
        raise ModuleNotFoundError("ONNX export needs the onnx package: pip install 'darkdeblur[onnx]'") from None
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
        model = onnx.load(tmp)
        for key, value in onnx_metadata(generator, cfg).items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, tmp)

    atomic_write(path, write)
    return path
