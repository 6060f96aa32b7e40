"""The web app: one page, its own assets, and a small JSON API (Starlette).

- ``GET /`` the page; ``GET /static/...`` its script and style (nothing comes from elsewhere, so
  it works offline; the Content-Security-Policy says so to the browser).
- ``GET /api/info`` methods, the default one, the device and the limits.
- ``POST /api/restore?method=M&name=N`` with the photo's bytes as the body: waits for the result
  and answers its size, notes and the addresses of ``/api/results/{id}/{input,result,kernel,
  download}``; errors answer ``{"error": "one line"}`` with a 4xx status (503 when the queue is
  full). ``name`` only names the download; the file type comes from decoding the bytes.

Uploads and results live in one private temporary folder (mode 0700) made at start-up and
removed at shut-down; only the newest ``keep`` results are kept.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..image_io import DEFAULT_MAX_PIXELS
from . import photos
from .jobs import JobQueue, QueueFull

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_UPLOAD = 100_000_000  # bytes
DEFAULT_WAITING = 4  # photos that may wait while one is restored
DEFAULT_KEEP = 20  # results kept for the page; older ones are removed
DISCONNECT_POLL = 0.2  # seconds between checks that the client is still there
_ID = re.compile(r"[0-9a-f]{32}")
_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                                       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def create_app(engine_factory: Callable[[str], object], methods: tuple[str, ...], default_method: str, *,
               device: str = "cpu", max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
               max_pixels: int = DEFAULT_MAX_PIXELS, waiting: int = DEFAULT_WAITING,
               keep: int = DEFAULT_KEEP, temp_parent: str | Path | None = None) -> Starlette:
    """The app; ``engine_factory(method)`` builds an engine (a ``Restorer``) on first use.

    ``temp_parent`` is where the private folder is made (default: the system's temporary folder).
    """
    if default_method not in methods:
        raise ValueError(f"default method {default_method!r} is not one of {', '.join(methods)}")
    engines = photos.Engines(engine_factory)
    results: OrderedDict[str, photos.Result] = OrderedDict()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        state["folder"] = Path(tempfile.mkdtemp(prefix="darkdeblur-serve-", dir=temp_parent))
        state["jobs"] = JobQueue(waiting)
        state["decoding"] = asyncio.Lock()  # one decode at a time bounds the memory it needs
        app.state.folder, app.state.jobs = state["folder"], state["jobs"]
        try:
            yield
        finally:
            state["jobs"].close()
            state["jobs"].join(timeout=30)  # a running job cannot be interrupted; don't wait forever
            results.clear()
            shutil.rmtree(state["folder"], ignore_errors=True)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_HEADERS)

    async def info(request: Request) -> Response:
        return JSONResponse({"methods": list(methods), "method": default_method, "device": device,
                             "max_upload_bytes": max_upload_bytes, "max_megapixels": max_pixels / 1e6},
                            headers=_HEADERS)

    async def restore(request: Request) -> Response:
        method = request.query_params.get("method") or default_method
        if method not in methods:
            return _error(400, f"unknown method {method!r}; choose one of {', '.join(methods)}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_upload_bytes:
            return _error(413, _too_large(int(declared), max_upload_bytes))
        try:
            slot = state["jobs"].reserve()
        except QueueFull as err:
            return _error(503, str(err))
        job_id = uuid.uuid4().hex
        folder = state["folder"] / job_id
        try:
            with slot:  # gives the place back if the upload fails before it becomes a job
                folder.mkdir()
                upload = folder / "upload"  # never the uploaded name: that only names the download
                await _receive(request, upload, max_upload_bytes)
                async with state["decoding"]:
                    loaded = await run_in_threadpool(photos.decode, upload, max_pixels)
                upload.unlink()
                work = partial(_restore, engines, method, loaded, folder,
                               photos.safe_stem(request.query_params.get("name", "")))
                future = state["jobs"].submit(slot, work)
        except photos.PhotoError as err:
            shutil.rmtree(folder, ignore_errors=True)
            return _error(err.status, str(err))
        except ClientDisconnect:  # the upload stopped half-way: nobody is left to answer
            shutil.rmtree(folder, ignore_errors=True)
            return Response(status_code=499)
        waiting_for = asyncio.wrap_future(future)
        while not waiting_for.done():
            await asyncio.wait({waiting_for}, timeout=DISCONNECT_POLL)
            if not waiting_for.done() and await request.is_disconnected():
                # Nobody will read the answer: skip the job if it has not started; the worker
                # finishes a running one (it cannot be interrupted) and its files are removed.
                future.cancel()
                future.add_done_callback(lambda _: shutil.rmtree(folder, ignore_errors=True))
                return Response(status_code=499)
        if future.cancelled():  # the server is stopping
            shutil.rmtree(folder, ignore_errors=True)
            return _error(503, "the server is stopping; this photo was not deblurred")
        try:
            result = future.result()
        except photos.PhotoError as err:
            shutil.rmtree(folder, ignore_errors=True)
            return _error(err.status, str(err))
        except Exception as err:  # noqa: BLE001 - one line for the page, whatever the engine raised
            shutil.rmtree(folder, ignore_errors=True)
            first = (str(err).strip().splitlines() or [""])[0]
            return _error(500, f"deblurring failed: {type(err).__name__}: {first}")
        results[job_id] = result
        while len(results) > keep:
            _, old = results.popitem(last=False)
            shutil.rmtree(old.folder, ignore_errors=True)
        base = f"/api/results/{job_id}"
        return JSONResponse({
            "id": job_id, "width": result.width, "height": result.height, "method": method,
            "warnings": result.warnings, "download_name": result.download_name,
            "input": f"{base}/input", "result": f"{base}/result", "download": f"{base}/download",
            "kernel": f"{base}/kernel" if "kernel" in result.files else None}, headers=_HEADERS)

    async def result_file(request: Request) -> Response:
        job_id, kind = request.path_params["id"], request.path_params["kind"]
        result = results.get(job_id) if _ID.fullmatch(job_id) else None
        path = result.files.get(kind) if result else None
        if path is None or not path.is_file():
            return _error(404, "no such result (results are kept until the server stops, "
                               f"the newest {keep} of them)")
        headers = dict(_HEADERS)
        if kind == "download":
            headers["Content-Disposition"] = f'attachment; filename="{result.download_name}"'
        return FileResponse(path, media_type=photos.MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                            headers=headers)

    routes = [Route("/", page), Route("/api/info", info), Route("/api/restore", restore, methods=["POST"]),
              Route("/api/results/{id}/{kind}", result_file),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return Starlette(routes=routes, lifespan=lifespan)


def _restore(engines: photos.Engines, method: str, loaded, folder: Path, stem: str) -> photos.Result:
    """The worker's part: build the engine on first use, restore, write the files."""
    return photos.restore(engines.get(method), loaded, folder, stem)


async def _receive(request: Request, path: Path, limit: int) -> None:
    """Stream the body into ``path``; :class:`photos.PhotoError` if it is empty or over ``limit``."""
    size = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise photos.PhotoError(413, _too_large(size, limit, more=True))
            f.write(chunk)
    if size == 0:
        raise photos.PhotoError(400, "the upload is empty; choose a photo")


def _too_large(size: int, limit: int, more: bool = False) -> str:
    return (f"the file is too large: {'over ' if more else ''}{size / 1e6:.1f} MB, "
            f"the limit is {limit / 1e6:g} MB")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_HEADERS)
