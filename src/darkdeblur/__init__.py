"""darkdeblur: motion deblurring with a conditional GAN trained with a dark-channel-prior loss.

>>> import darkdeblur                                   # doctest: +SKIP
>>> model = darkdeblur.load_model()                     # the bundled weights  # doctest: +SKIP
>>> sharp = darkdeblur.deblur(PIL.Image.open("a.jpg"), model)  # doctest: +SKIP
"""
__version__ = "0.1.0"

from .inference import Deblurrer, deblur, load_model  # noqa: E402

__all__ = ["__version__", "Deblurrer", "deblur", "load_model"]
