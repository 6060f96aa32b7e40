"""``darkdeblur deblur`` on a camera folder: unusual files, bad files, and nothing lost."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from conftest import MAKE, ORIENTATION, corrupted, encoded, exif_bytes, png16_bytes, random_pixels

import darkdeblur.image_io
from darkdeblur.cli import main
from darkdeblur.image_io import load_image
from darkdeblur.devices import resolve_device


@pytest.fixture(scope="module")
def weights(tiny_weights) -> Path:
    return tiny_weights


@pytest.fixture(autouse=True)
def keep_thread_count():
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


def deblur(weights: Path, *args) -> int:
    return main(["deblur", *map(str, args), "--weights", str(weights), "--threads", "1"])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".*.tmp"))


def save(path: Path, pixels: np.ndarray, **options) -> None:
    Image.fromarray(pixels).save(path, **options)


GOOD = {  # input name -> output name
    "good.jpg": "good.jpg", "phone.jpg": "phone.jpg", "deep.png": "deep.png", "shot.png": "shot.png",
    "anim.gif": "anim.png", "print.jpg": "print.jpg", "grey.png": "grey.png", "scan.tif": "scan.tif",
    "photo.webp": "photo.webp", "old.bmp": "old.bmp",
}
BAD = {  # input name -> the reason its one line gives
    "corrupt.png": "corrupt image data", "truncated.jpg": "truncated file", "empty.jpg": "empty file",
    "notes.jpg": "not an image", "dot.png": "too small to deblur (1x1 pixels",
    "huge.png": "3000x2000 is 6 megapixels, over the limit of 5",
}


@pytest.fixture()
def camera(tmp_path) -> Path:
    """A folder as people have them: odd formats, a rotated phone shot, broken files, a note."""
    folder = tmp_path / "camera"
    folder.mkdir()
    save(folder / "good.jpg", random_pixels((48, 64, 3)))
    save(folder / "phone.jpg", random_pixels((24, 40, 3)), exif=exif_bytes(orientation=6))
    (folder / "deep.png").write_bytes(png16_bytes(random_pixels((32, 32, 3), np.uint16)))
    save(folder / "shot.png", random_pixels((32, 48, 4)))
    Image.fromarray(random_pixels((32, 32, 3))).convert("P").save(folder / "anim.gif")
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(folder / "print.jpg")
    save(folder / "grey.png", random_pixels((32, 32)))
    save(folder / "scan.tif", random_pixels((32, 32, 3)))
    save(folder / "photo.webp", random_pixels((32, 32, 3)))
    save(folder / "old.bmp", random_pixels((32, 32, 3)))
    (folder / "corrupt.png").write_bytes(corrupted(encoded("PNG")))
    (folder / "truncated.jpg").write_bytes(encoded("JPEG")[:1500])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo\n")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    Image.new("L", (3000, 2000)).save(folder / "huge.png")  # compresses to almost nothing
    (folder / "notes.txt").write_text("shot list\n")
    return folder


@pytest.mark.parametrize("method", ["gan", "dcp"])
def test_camera_folder(camera, weights, capsys, method):
    before = snapshot(camera)
    out = camera.parent / "out"
    code = deblur(weights, camera, "-o", out, "--max-megapixels", "5", "--method", method)
    printed = capsys.readouterr()
    assert code == 1
    assert printed.out.strip().splitlines()[-1] == "darkdeblur: 10 done, 6 failed, 1 skipped"
    # dcp notes photos it leaves unchanged (these are tiny or pure noise): a line each, not failures
    lines = [line for line in printed.err.strip().splitlines() if "unchanged" not in line]
    for name, reason in BAD.items():
        mine = [line for line in lines if f"{camera / name}:" in line]
        assert len(mine) == 1 and mine[0].startswith(f"darkdeblur: {camera / name}: {reason}"), mine
    assert f"darkdeblur: {camera / 'notes.txt'}: skipped, not an image file" in lines
    assert len(lines) == len(BAD) + 1 and "Traceback" not in printed.err
    assert snapshot(camera) == before  # inputs byte-identical
    assert temp_files(camera.parent) == []
    assert sorted(p.name for p in out.iterdir()) == sorted(GOOD.values())

    with Image.open(out / "phone.jpg") as phone:
        assert phone.size == (24, 40) and phone.getexif().get(ORIENTATION, 1) == 1  # upright
    assert load_image(out / "deep.png").bit_depth == 16
    shot = load_image(out / "shot.png")
    np.testing.assert_array_equal(shot.alpha, np.asarray(Image.open(camera / "shot.png"))[..., 3])
    kinds = [("anim.png", "RGB", "PNG"), ("print.jpg", "RGB", "JPEG"), ("grey.png", "L", "PNG"),
             ("scan.tif", "RGB", "TIFF"), ("photo.webp", "RGB", "WEBP"), ("old.bmp", "RGB", "BMP")]
    for name, mode, fmt in kinds:
        with Image.open(out / name) as image:
            assert (image.mode, image.format) == (mode, fmt)


def test_exif_survives_and_orientation_resets(tmp_path, weights):
    save(tmp_path / "phone.jpg", random_pixels((24, 40, 3)), exif=exif_bytes(orientation=8, make="Pixel"))
    assert deblur(weights, tmp_path / "phone.jpg", "-o", tmp_path / "out") == 0
    with Image.open(tmp_path / "out" / "phone.jpg") as out:
        assert out.size == (24, 40)
        assert out.getexif()[MAKE] == "Pixel" and out.getexif().get(ORIENTATION, 1) == 1


def test_restart_skips_finished_outputs_and_force_redoes_them(tmp_path, weights, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        save(photos / f"img{i}.jpg", random_pixels((32, 32, 3), seed=i))
    out = photos / "deblurred"  # inside the input folder: must not become input next time
    assert deblur(weights, photos, "-o", out) == 0
    assert capsys.readouterr().out.strip() == "darkdeblur: 3 done, 0 failed, 0 skipped"
    first = snapshot(out)
    (out / "img1.jpg").unlink()  # as if the first run had been interrupted there
    assert deblur(weights, photos, "-o", out) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == "darkdeblur: 1 done, 0 failed, 2 skipped"
    assert f"darkdeblur: {photos / 'img0.jpg'}: skipped, {out / 'img0.jpg'} exists" in printed.err
    assert snapshot(out) == first and not (out / "deblurred").exists()
    assert deblur(weights, photos, "-o", out, "--force") == 0
    assert capsys.readouterr().out.strip() == "darkdeblur: 3 done, 0 failed, 0 skipped"


def test_an_input_is_never_overwritten_without_overwrite(tmp_path, weights, capsys):
    save(tmp_path / "a.png", random_pixels((32, 32, 3), seed=1))
    save(tmp_path / "b.png", random_pixels((32, 32, 3), seed=2))
    Image.fromarray(random_pixels((32, 32, 3), seed=3)).convert("P").save(tmp_path / "b.gif")  # -> b.png
    before = snapshot(tmp_path)
    assert deblur(weights, tmp_path, "-o", tmp_path) == 1
    printed = capsys.readouterr()
    assert printed.out.strip() == "darkdeblur: 0 done, 3 failed, 0 skipped"
    assert f"darkdeblur: {tmp_path / 'b.gif'}: output {tmp_path / 'b.png'} is an input; use --overwrite" \
        in printed.err
    assert snapshot(tmp_path) == before
    assert deblur(weights, tmp_path / "a.png", "-o", tmp_path, "--overwrite") == 0
    assert (tmp_path / "a.png").read_bytes() != before["a.png"] and temp_files(tmp_path) == []


def test_two_inputs_never_share_an_output(tmp_path, weights, capsys):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        save(tmp_path / sub / "same.png", random_pixels((32, 32, 3)))
    code = deblur(weights, tmp_path / "x" / "same.png", tmp_path / "y" / "same.png", "-o", tmp_path / "out")
    assert code == 1
    assert f"is already the output of {tmp_path / 'x' / 'same.png'}" in capsys.readouterr().err


def test_ctrl_c_leaves_no_partial_file_and_the_run_restarts(tmp_path, weights, monkeypatch, capsys):
    for i in range(3):
        save(tmp_path / f"img{i}.png", random_pixels((32, 32, 3), seed=i))
    real_write = darkdeblur.image_io._write_pillow
    calls = []

    def interrupted_write(tmp, *args):
        calls.append(tmp)
        if len(calls) == 2:
            Path(tmp).write_bytes(b"\x89PNG half of it")
            raise KeyboardInterrupt
        real_write(tmp, *args)
    monkeypatch.setattr(darkdeblur.image_io, "_write_pillow", interrupted_write)
    out = tmp_path / "out"
    assert deblur(weights, tmp_path, "-o", out) == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["img0.png"]  # whole, and nothing else
    Image.open(out / "img0.png").load()
    monkeypatch.setattr(darkdeblur.image_io, "_write_pillow", real_write)
    assert deblur(weights, tmp_path, "-o", out) == 0
    assert capsys.readouterr().out.strip() == "darkdeblur: 2 done, 0 failed, 1 skipped"


def test_output_format_follows_the_output_path_or_format_flag(tmp_path, weights):
    save(tmp_path / "a.png", random_pixels((64, 64, 3)))
    assert deblur(weights, tmp_path / "a.png", "-o", tmp_path / "result.webp") == 0
    assert Image.open(tmp_path / "result.webp").format == "WEBP"
    assert deblur(weights, tmp_path / "a.png", "-o", tmp_path / "jpg", "--format", "jpg") == 0
    assert Image.open(tmp_path / "jpg" / "a.jpg").format == "JPEG"
    assert deblur(weights, tmp_path / "a.png", "-o", tmp_path / "q", "--format", "jpg", "--quality", "20") == 0
    assert (tmp_path / "q" / "a.jpg").stat().st_size < (tmp_path / "jpg" / "a.jpg").stat().st_size


@pytest.mark.parametrize("args", [
    ["--quality", "0"], ["--quality", "high"], ["--tile", "-5"], ["--format", "gif"], ["--bogus"],
])
def test_bad_flags_are_usage_errors(tmp_path, weights, args):
    assert deblur(weights, tmp_path / "a.png", "-o", tmp_path / "out", *args) == 2


@pytest.mark.parametrize("args,message", [
    (["two.png", "-o", "result.png"], "names one file"),
    (["-o", "result.gif"], "cannot write .gif"),
    (["--tile", "100"], "--tile 100 must be at least twice the overlap (64)"),
    (["--max-megapixels", "0"], "must be positive"),
    # Passes the flag check (100 >= 2 x 50) but not once both are rounded to the model's multiple.
    (["--tile", "100", "--overlap", "50"], "tile 112 must be at least twice the overlap 64"),
])
def test_impossible_settings_are_usage_errors_with_one_line(tmp_path, weights, capsys, monkeypatch, args,
                                                           message):
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "one.png", random_pixels((32, 32, 3)))
    save(tmp_path / "two.png", random_pixels((32, 32, 3)))
    assert deblur(weights, "one.png", *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(),
                    reason="needs a CPU-only machine")
def test_half_on_cpu_is_a_usage_error(tmp_path, weights, capsys):
    assert deblur(weights, tmp_path / "a.png", "--half", "--device", "cpu") == 2
    assert "--half needs a GPU" in capsys.readouterr().err


def test_debug_shows_the_traceback_otherwise_never(tmp_path, weights, capsys):
    (tmp_path / "bad.png").write_bytes(b"junk")
    assert deblur(weights, tmp_path / "bad.png", "-o", tmp_path / "out") == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "deblur", str(tmp_path / "bad.png"), "-o", str(tmp_path / "out"),
                 "--weights", str(weights)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_threads_flag_sets_torch_threads(tmp_path, weights):
    save(tmp_path / "a.png", random_pixels((32, 32, 3)))
    torch.set_num_threads(2)
    assert deblur(weights, tmp_path / "a.png", "-o", tmp_path / "out") == 0
    assert torch.get_num_threads() == 1


def test_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
