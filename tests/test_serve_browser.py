"""`darkdeblur serve` over real HTTP: the command itself, a client that leaves mid-job, and the page
driven in headless Chromium (Playwright with the system's /usr/bin/chromium).

``DARKDEBLUR_SCREENSHOT=docs/serve.png python -m pytest tests/test_serve_browser.py`` also writes
the README's picture of the page.
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_photo
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra (Starlette, uvicorn) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (Starlette, uvicorn) is not installed")
httpx = pytest.importorskip("httpx2", reason="httpx2 is not installed")

from darkdeblur.blur import blur  # noqa: E402
from darkdeblur.engines import DcpRestorer, DcpSettings, Restoration, Restorer  # noqa: E402
from darkdeblur.pixels import to_tensor, to_uint8  # noqa: E402
from darkdeblur.serve import create_app  # noqa: E402
from darkdeblur.serve.server import listening_socket  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_LIMIT = 300_000  # bytes: the README's picture stays small


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds (the server works on threads of its own)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


@contextmanager
def running(app):
    """Serve ``app`` with uvicorn on a free local port, on a thread; yields the base address."""
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "the server started")
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def blurred_photo(size=(480, 360)) -> np.ndarray:
    """A photo with 9 px of horizontal motion blur: something for dcp to find."""
    kernel = torch.zeros(9, 9)
    kernel[4, :] = 1 / 9
    return to_uint8(blur(to_tensor(small_photo("astronaut", size)), kernel))


class Blocking(Restorer):
    method = "blocking"

    def __init__(self):
        self.go, self.calls = threading.Event(), 0

    def restore_checked(self, rgb):
        self.calls += 1
        assert self.go.wait(30), "the test never let the engine finish"
        return Restoration(image=rgb)


def test_a_client_that_leaves_mid_job_does_not_hold_the_worker(tmp_path):
    engine = Blocking()
    app = create_app({"blocking": engine}.__getitem__, ("blocking",), "blocking", temp_parent=tmp_path, waiting=2)
    photo = png(small_photo("coffee", (48, 40)))
    with running(app) as url:
        jobs = app.state.jobs
        leave_soon = httpx.Timeout(30, read=1)
        with pytest.raises(httpx.ReadTimeout):  # its photo is being restored when it leaves
            httpx.post(f"{url}/api/restore", content=photo, timeout=leave_soon)
        with pytest.raises(httpx.ReadTimeout):  # its photo is still waiting when it leaves
            httpx.post(f"{url}/api/restore", content=photo, timeout=leave_soon)
        wait_until(lambda: jobs.admitted == 1, "the waiting photo of the client that left was dropped")
        engine.go.set()
        answer = httpx.post(f"{url}/api/restore", content=photo, timeout=30)
        assert answer.status_code == 200, answer.text
        assert engine.calls == 2  # the first photo and this one; the dropped one never ran
    assert list(tmp_path.iterdir()) == []


def test_serve_command_warns_off_loopback_and_cleans_up_on_ctrl_c(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "darkdeblur", "serve", "--host", "0.0.0.0", "--port", "0",
               "--method", "dcp", "--device", "cpu"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("darkdeblur serve: http://0.0.0.0:"), line + proc.stderr.read()
        port = int(line.split("http://0.0.0.0:")[1].split("/")[0])
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/api/info"), "the server answered")
        assert httpx.get(f"http://127.0.0.1:{port}/api/info").json()["method"] == "dcp"
        assert len(list(tmp_path.iterdir())) == 1  # its private folder
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "warning: listening on 0.0.0.0: anyone on the network" in err
    assert list(tmp_path.iterdir()) == []


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install it with `apt-get install -y chromium` (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as playwright:
        # Playwright gives each launch a fresh, temporary user-data-dir.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def test_page_in_chromium(tmp_path, browser):
    photo_file = tmp_path / "photos" / "street.png"
    photo_file.parent.mkdir()
    photo_file.write_bytes(png(blurred_photo()))
    text_file = tmp_path / "photos" / "notes.jpg"
    text_file.write_text("not a photo at all\n" * 20)
    # the plain deconvolution (no misfit fall-back): the page must show a clearly changed photo
    dcp = DcpRestorer(replace(DcpSettings(), fallback=None))
    app = create_app(lambda method: dcp, ("dcp",), "dcp", temp_parent=tmp_path / "serve")
    (tmp_path / "serve").mkdir()
    with running(app) as url:
        page = browser.new_page(viewport={"width": 1180, "height": 760})
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        page.wait_for_selector("#method option[value=dcp]", state="attached")
        page.set_input_files("#files", str(photo_file))
        card = page.locator(".photo").first
        card.locator(".status").filter(has_text="deblurring").wait_for(timeout=60_000)
        assert card.locator(".progress").is_visible()  # the progress indicator while it works
        page.wait_for_selector(".photo.done", timeout=120_000)

        after = card.locator(".after")
        assert after.evaluate("img => img.complete && img.naturalWidth") == 480
        assert card.locator(".kernel img").evaluate("img => img.complete && img.naturalWidth") > 0
        assert card.locator(".kernel").is_visible()
        assert not card.locator(".progress").is_visible()
        link = card.locator(".download")
        assert link.get_attribute("download") == "street-deblurred.png"

        compare, slider = card.locator(".compare"), card.locator(".slider")
        slider.focus()
        page.keyboard.press("Home")  # the result over the whole frame
        all_after, clip_after = compare.screenshot(), after.evaluate("img => getComputedStyle(img).clipPath")
        page.keyboard.press("End")  # the input over the whole frame
        all_before, clip_before = compare.screenshot(), after.evaluate("img => getComputedStyle(img).clipPath")
        assert clip_after != clip_before
        shown_after, shown_before = (np.asarray(Image.open(io.BytesIO(s)).convert("L"), float)
                                     for s in (all_after, all_before))
        assert np.abs(shown_after - shown_before).mean() > 2  # what is visible changed
        for _ in range(50):
            page.keyboard.press("ArrowLeft")  # back to the middle
        assert slider.input_value() == "50"
        box = compare.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.3)  # zoom there

        download = httpx.get(url + link.get_attribute("href"))
        assert Image.open(io.BytesIO(download.content)).size == (480, 360)

        if os.environ.get("DARKDEBLUR_SCREENSHOT"):
            save_screenshot(page.screenshot(full_page=False), Path(os.environ["DARKDEBLUR_SCREENSHOT"]))

        page.set_input_files("#files", str(text_file))  # named .jpg, but its bytes decide
        error = page.locator(".photo.failed .error")
        error.wait_for(timeout=30_000)
        assert error.inner_text().startswith("not an image")
        page.close()
    assert all(address.startswith((url, "data:")) for address in requested), requested
    assert list((tmp_path / "serve").iterdir()) == []


def save_screenshot(data: bytes, path: Path) -> None:
    """A palette PNG of the page: the README's picture, small enough to commit."""
    picture = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, optimize=True)
    assert path.stat().st_size < SCREENSHOT_LIMIT, f"{path} is {path.stat().st_size} bytes"


def test_chromium_is_named_by_ci():
    """.ci/run installs the browser, so the page test runs there and not only where it happens to exist."""
    script = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "apt-get" in script and "install -y -qq chromium" in script and str(CHROMIUM) in script
