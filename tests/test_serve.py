"""`darkdeblur serve`'s API, in-process: uploads, refusals with their messages, the queue bound, clean-up."""
from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import MAKE, corrupted, encoded, exif_bytes, png16_bytes, random_pixels, small_photo
from PIL import Image

pytest.importorskip("starlette", reason="the serve extra (Starlette, uvicorn) is not installed")
pytest.importorskip("httpx2", reason="Starlette's test client needs httpx2")
from starlette.testclient import TestClient  # noqa: E402

from darkdeblur.cli import main  # noqa: E402
from darkdeblur.engines import Restoration, Restorer, load_engine  # noqa: E402
from darkdeblur.image_io import load_image  # noqa: E402
from darkdeblur.serve import create_app  # noqa: E402
from darkdeblur.serve.jobs import JobQueue, QueueFull  # noqa: E402
from darkdeblur.serve.server import ServeError, is_loopback, listening_socket  # noqa: E402


@pytest.fixture(scope="module")
def tiny_gan(tiny_weights) -> Restorer:
    return load_engine("gan", weights=tiny_weights, device="cpu")


class Kernelled(Restorer):
    """Inverts the photo and reports a 2x1 grid of 5x5 kernels, as a kernel-estimating engine does."""

    method = "fake"

    def restore_checked(self, rgb):
        top = np.iinfo(rgb.dtype).max
        kernel = np.zeros((2, 1, 5, 5), np.float32)
        kernel[:, :, 2, 2] = 1
        return Restoration(image=(top - rgb).astype(rgb.dtype), kernel=kernel, warnings=["a note"])


class Blocking(Restorer):
    """Waits for ``go`` before returning the photo unchanged; counts its calls."""

    method = "blocking"

    def __init__(self):
        self.go, self.started, self.calls = threading.Event(), threading.Event(), 0

    def restore_checked(self, rgb):
        self.calls += 1
        self.started.set()
        assert self.go.wait(30), "the test never let the engine finish"
        return Restoration(image=rgb)


def client(tmp_path: Path, engines: dict, **options) -> TestClient:
    app = create_app(engines.__getitem__, tuple(engines), next(iter(engines)), temp_parent=tmp_path, **options)
    return TestClient(app)


def jpeg(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


def test_upload_comes_back_as_an_image_of_the_same_size(tmp_path, tiny_gan):
    photo = small_photo("astronaut", (72, 56))
    with client(tmp_path, {"gan": tiny_gan}) as http:
        answer = http.post("/api/restore?method=gan&name=holiday.jpg", content=jpeg(photo))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["width"], body["height"], body["method"]) == (72, 56, "gan")
        assert body["kernel"] is None  # the gan estimates no kernel
        download = http.get(body["download"])
        assert download.headers["content-type"] == "image/jpeg"
        assert 'filename="holiday-deblurred.jpg"' in download.headers["content-disposition"]
        for url in (body["input"], body["result"]):
            assert Image.open(io.BytesIO(http.get(url).content)).size == (72, 56)
    restored = Image.open(io.BytesIO(download.content))
    assert (restored.format, restored.size) == ("JPEG", (72, 56))


def test_download_is_written_as_the_cli_writes_it(tmp_path):
    """16-bit RGBA PNG in, 16-bit RGBA PNG out; the kernel picture is offered; EXIF kept in JPEG."""
    rgba = random_pixels((40, 48, 4), np.uint16, seed=3)
    with client(tmp_path, {"fake": Kernelled()}) as http:
        body = http.post("/api/restore?name=scan.png", content=png16_bytes(rgba)).json()
        out = tmp_path / "out.png"
        out.write_bytes(http.get(body["download"]).content)
        kernel = Image.open(io.BytesIO(http.get(body["kernel"]).content))
        assert body["warnings"] == ["a note"]
        photo = random_pixels((32, 32, 3), seed=4)
        body = http.post("/api/restore?name=cam.jpg", content=jpeg(photo, exif=exif_bytes(make="Cam9"))).json()
        camera = Image.open(io.BytesIO(http.get(body["download"]).content))
    loaded = load_image(out)
    assert loaded.bit_depth == 16 and loaded.alpha is not None
    np.testing.assert_array_equal(loaded.rgb, 65535 - rgba[..., :3])
    np.testing.assert_array_equal(loaded.alpha, rgba[..., 3])
    assert kernel.size[0] < kernel.size[1]  # two regions stacked: taller than wide
    assert camera.getexif()[MAKE] == "Cam9"


@pytest.mark.parametrize("data, status, words", [
    (b"just some text, not a photo\n" * 10, 415, "not an image"),
    (jpeg(random_pixels((64, 64, 3)))[:400], 422, "truncated"),
    (corrupted(encoded("PNG")), 422, "cannot use this photo"),
    (b"", 400, "empty"),
], ids=["text", "truncated-jpeg", "corrupt-png", "empty"])
def test_bad_uploads_get_a_4xx_and_one_line(tmp_path, data, status, words):
    engine = Kernelled()
    with client(tmp_path, {"fake": engine}) as http:
        answer = http.post("/api/restore?name=photo.jpg", content=data)
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert words in message and "\n" not in message
    assert str(tmp_path) not in message  # the private folder is nobody's business


def test_oversized_upload_and_too_many_pixels_get_413(tmp_path):
    big = jpeg(random_pixels((200, 200, 3)))
    with client(tmp_path, {"fake": Kernelled()}, max_upload_bytes=len(big) - 1) as http:
        answer = http.post("/api/restore", content=big)
    assert answer.status_code == 413 and "too large" in answer.json()["error"]
    assert "limit is" in answer.json()["error"]

    def chunks():  # no Content-Length: the limit is counted while the body streams in
        yield big[:1000]
        yield big[1000:]
    with client(tmp_path, {"fake": Kernelled()}, max_upload_bytes=len(big) - 1) as http:
        answer = http.post("/api/restore", content=chunks())
    assert answer.status_code == 413 and "too large" in answer.json()["error"]

    with client(tmp_path, {"fake": Kernelled()}, max_pixels=250_000) as http:
        answer = http.post("/api/restore", content=jpeg(small_photo("astronaut", (600, 500))))
    assert answer.status_code == 413
    assert answer.json()["error"] == ("the photo is too large: 600x500 is 0.3 megapixels, "
                                      "over the limit of 0.25")


def test_unknown_method_is_400(tmp_path):
    with client(tmp_path, {"fake": Kernelled()}) as http:
        answer = http.post("/api/restore?method=magic", content=encoded("PNG"))
    assert answer.status_code == 400 and "choose one of fake" in answer.json()["error"]


def test_full_queue_answers_503_at_once(tmp_path):
    engine = Blocking()
    with client(tmp_path, {"blocking": engine}, waiting=1) as http:
        jobs = http.app.state.jobs
        held = [jobs.reserve(), jobs.reserve()]  # the running photo and the one waiting
        answer = http.post("/api/restore", content=encoded("PNG"))
        assert answer.status_code == 503
        assert answer.json()["error"] == "the server is busy with 2 photos; try again when one is done"
        held[0].release()
        engine.go.set()
        assert http.post("/api/restore", content=encoded("PNG")).status_code == 200
        held[1].release()


def test_nothing_is_left_in_the_temporary_folder_after_the_app_stops(tmp_path):
    with client(tmp_path, {"fake": Kernelled()}) as http:
        body = http.post("/api/restore?name=a.png", content=encoded("PNG")).json()
        http.post("/api/restore", content=b"not a photo")
        folder = http.app.state.folder
        assert folder.parent == tmp_path and any(folder.rglob("result*"))
        assert folder.stat().st_mode & 0o077 == 0  # private to this user
    assert list(tmp_path.iterdir()) == []
    assert body["download"]


def test_old_results_are_removed_beyond_keep(tmp_path):
    with client(tmp_path, {"fake": Kernelled()}, keep=2) as http:
        urls = [http.post("/api/restore", content=encoded("PNG")).json()["download"] for _ in range(3)]
        assert [http.get(url).status_code for url in urls] == [404, 200, 200]
        assert len(list(http.app.state.folder.iterdir())) == 2
        assert http.get("/api/results/../../etc/passwd").status_code == 404


def test_uploaded_name_is_never_a_path(tmp_path):
    with client(tmp_path, {"fake": Kernelled()}) as http:
        body = http.post("/api/restore", params={"name": "../../x/evil name.png"}, content=encoded("PNG")).json()
        assert body["download_name"] == "evil_name-deblurred.png"
        names = {p.name for p in http.app.state.folder.rglob("*")}
    assert not any("evil" in name for name in names)
    assert not (tmp_path.parent / "x").exists()


def test_the_page_uses_only_its_own_assets(tmp_path):
    with client(tmp_path, {"fake": Kernelled()}) as http:
        page = http.get("/")
        assets = [http.get(f"/static/{name}") for name in ("app.js", "style.css")]
        info = http.get("/api/info").json()
    assert page.status_code == 200 and all(a.status_code == 200 for a in assets)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for text in [page.text] + [a.text for a in assets]:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert info["methods"] == ["fake"] and info["max_megapixels"] == 150


def test_queue_skips_a_job_cancelled_while_waiting_and_goes_on():
    jobs = JobQueue(waiting=1)
    go = threading.Event()
    first = jobs.submit(jobs.reserve(), lambda: go.wait(30) and "first")
    second = jobs.submit(jobs.reserve(), lambda: pytest.fail("a cancelled job ran"))
    with pytest.raises(QueueFull):
        jobs.reserve()
    assert second.cancel() and jobs.admitted == 1  # its place is free at once
    go.set()
    assert first.result(30) == "first"
    assert jobs.submit(jobs.reserve(), lambda: "third").result(30) == "third"
    jobs.close()
    jobs.join(30)
    assert jobs.admitted == 0


def test_closing_the_queue_cancels_the_waiting_jobs():
    jobs = JobQueue(waiting=2)
    started, go = threading.Event(), threading.Event()
    running = jobs.submit(jobs.reserve(), lambda: started.set() or go.wait(30) and "ran")
    waiting = jobs.submit(jobs.reserve(), lambda: pytest.fail("a job ran after the queue closed"))
    assert started.wait(30)
    jobs.close()
    go.set()
    jobs.join(30)
    assert running.result() == "ran" and waiting.cancelled() and jobs.admitted == 0


def test_serve_addresses():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    taken = listening_socket("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(ServeError, match="cannot listen on 127.0.0.1"):
            listening_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_serve_usage_errors_are_one_line(capsys):
    assert main(["serve", "--max-megapixels", "0"]) == 2
    assert main(["serve", "--device", "cuda:99"]) == 2
    assert main(["serve", "--method", "gan", "--weights", "/nonexistent/w.safetensors"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("darkdeblur serve: ") for line in lines)
