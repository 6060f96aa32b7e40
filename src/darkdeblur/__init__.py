"""darkdeblur: motion deblurring, classical (dark channel prior) and learned (dark-channel GAN).

>>> import darkdeblur                                   # doctest: +SKIP
>>> engine = darkdeblur.load_model(method="dcp")        # doctest: +SKIP
>>> sharp = darkdeblur.deblur(PIL.Image.open("a.jpg"), engine)  # doctest: +SKIP
"""
__version__ = "0.1.0"

from .engines import Restoration, Restorer  # noqa: E402
from .inference import deblur, load_model  # noqa: E402

__all__ = ["__version__", "Restoration", "Restorer", "deblur", "load_model"]
