"""``darkdeblur serve``: a local web page to deblur photos and compare them with their inputs.

:func:`create_app` takes a function that builds an engine by method name, so tests can give it
a small one; ``server.run`` serves it with uvicorn. Needs the ``serve`` extra (Starlette, uvicorn).
"""
from .app import create_app

__all__ = ["create_app"]
