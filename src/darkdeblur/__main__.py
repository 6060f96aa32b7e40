"""``python -m darkdeblur`` (and ``torchrun -m darkdeblur train ...``)."""
import sys

from .cli import main

sys.exit(main())
