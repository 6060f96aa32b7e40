"""Training and evaluation data: folder layouts, the paper's transforms, synthetic blur."""
from .folders import DataSources, discover, find_pairs
from .stream import BatchStream, device_batch, load_training_images
from .synthetic import SyntheticPairs

__all__ = ["DataSources", "discover", "find_pairs", "BatchStream", "device_batch",
           "load_training_images", "SyntheticPairs"]
