"""Reading and writing real-world image files: bit depth, alpha, orientation, profiles, bad files."""
from pathlib import Path

import numpy as np
import pytest
import torch
import tifffile
from PIL import Image, ImageCms, ImageOps

from conftest import MAKE, ORIENTATION, corrupted, encoded, exif_bytes, png, png16_bytes, random_pixels
from darkdeblur.image_io import ImageReadError, LoadedImage, load_image, output_format, read_rgb, save_image

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
def like(rgb: np.ndarray, **fields) -> LoadedImage:
    record = {"path": Path("source"), "rgb": rgb, "alpha": None, "grey": False, "icc": None, "exif": None,
              "format": "PNG"}
    return LoadedImage(**{**record, **fields})


# --------------------------------------------------------------------------------------- bit depth


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_png_reads_every_bit(tmp_path, channels):
    pixels = random_pixels((21, 34, channels), np.uint16)
    (tmp_path / "deep.png").write_bytes(png16_bytes(pixels))
    image = load_image(tmp_path / "deep.png")
    assert image.bit_depth == 16 and image.format == "PNG"
    np.testing.assert_array_equal(image.rgb, pixels[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(image.alpha, pixels[..., 3])
    else:
        assert image.alpha is None


@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_png_output_is_a_valid_16bit_png(tmp_path, with_alpha):
    rgb = random_pixels((40, 30, 3), np.uint16, seed=1)
    alpha = random_pixels((40, 30), np.uint16, seed=2) if with_alpha else None
    save_image(tmp_path / "out.png", rgb, like(rgb, alpha=alpha, icc=SRGB_ICC, exif=exif_bytes()))
    with Image.open(tmp_path / "out.png") as pillow:  # Pillow reads the high bytes of 16-bit colour
        assert pillow.mode == ("RGBA" if with_alpha else "RGB")
        np.testing.assert_array_equal(np.asarray(pillow)[..., :3], rgb >> 8)
        assert pillow.info["icc_profile"] == SRGB_ICC
        assert pillow.getexif()[MAKE] == "TestCam"
    again = load_image(tmp_path / "out.png")
    np.testing.assert_array_equal(again.rgb, rgb)
    if with_alpha:
        np.testing.assert_array_equal(again.alpha, alpha)


def test_16bit_tiff_reads_and_writes_16bit(tmp_path):
    pixels = random_pixels((25, 19, 3), np.uint16, seed=3)
    tifffile.imwrite(tmp_path / "scan.tif", pixels, photometric="rgb", compression="zlib")
    image = load_image(tmp_path / "scan.tif")
    np.testing.assert_array_equal(image.rgb, pixels)
    save_image(tmp_path / "out.tif", image.rgb, image)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), pixels)


def test_16bit_greyscale_png_stays_16bit_greyscale(tmp_path):
    grey = random_pixels((17, 23), np.uint16, seed=4)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    image = load_image(tmp_path / "grey16.png")
    assert image.grey and image.bit_depth == 16
    np.testing.assert_array_equal(image.rgb, np.repeat(grey[..., None], 3, axis=2))
    save_image(tmp_path / "out.png", image.rgb, image)
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(out), grey)


def test_16bit_into_jpeg_is_rounded_to_8bit(tmp_path):
    rgb = np.full((16, 16, 3), 257 * 200 + 128, np.uint16)  # 200.5 in 8-bit units: rounds up
    save_image(tmp_path / "out.jpg", rgb, like(rgb), quality=100)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB" and np.abs(np.asarray(out).astype(int) - 201).max() <= 1


# ------------------------------------------------------------------------- orientation and metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_and_is_reset(tmp_path, orientation):
    pixels = random_pixels((12, 20, 3), seed=orientation)
    Image.fromarray(pixels).save(tmp_path / "phone.png", exif=exif_bytes(orientation))
    image = load_image(tmp_path / "phone.png")
    with Image.open(tmp_path / "phone.png") as pillow:
        np.testing.assert_array_equal(image.rgb, np.asarray(ImageOps.exif_transpose(pillow)))
    exif = Image.Exif()
    exif.load(image.exif)
    assert exif.get(ORIENTATION, 1) == 1 and exif[MAKE] == "TestCam"


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_icc_profile_and_exif_survive_into_each_format(tmp_path, suffix):
    Image.fromarray(random_pixels((24, 32, 3))).save(
        tmp_path / "camera.jpg", icc_profile=SRGB_ICC, exif=exif_bytes(orientation=6))
    image = load_image(tmp_path / "camera.jpg")
    assert image.rgb.shape == (32, 24, 3)  # rotated upright
    save_image(tmp_path / f"out{suffix}", image.rgb, image)
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert out.size == (24, 32)
        assert out.info.get("icc_profile") == SRGB_ICC
        assert out.getexif()[MAKE] == "TestCam" and out.getexif().get(ORIENTATION, 1) == 1


def test_alpha_passes_through_and_jpeg_drops_it(tmp_path):
    rgba = random_pixels((20, 30, 4), seed=5)
    Image.fromarray(rgba).save(tmp_path / "shot.png")
    image = load_image(tmp_path / "shot.png")
    np.testing.assert_array_equal(image.alpha, rgba[..., 3])
    restored = 255 - image.rgb
    save_image(tmp_path / "out.png", restored, image)
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(out), np.dstack([restored, rgba[..., 3]]))
    save_image(tmp_path / "out.jpg", restored, image)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB"


def test_palette_gif_with_and_without_transparency(tmp_path):
    palette = Image.fromarray(random_pixels((16, 16), seed=6) % 4, mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])  # index 0 (black) is see-through
    palette.save(tmp_path / "plain.gif")
    palette.save(tmp_path / "clear.gif", transparency=0, optimize=False)
    plain, clear = load_image(tmp_path / "plain.gif"), load_image(tmp_path / "clear.gif")
    with Image.open(tmp_path / "plain.gif") as pillow:
        np.testing.assert_array_equal(plain.rgb, np.asarray(pillow.convert("RGB")))
    assert plain.alpha is None and not plain.grey
    assert clear.alpha is not None and set(np.unique(clear.alpha)) <= {0, 255} and (clear.alpha == 0).any()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no black, full magenta + yellow: red
    cmyk.save(tmp_path / "print.jpg", quality=100)
    image = load_image(tmp_path / "print.jpg")
    assert image.rgb.shape == (16, 16, 3) and image.icc is None
    assert (image.rgb[..., 0] > 240).all() and (image.rgb[..., 1:] < 15).all()
    save_image(tmp_path / "out.jpg", image.rgb, image)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "RGB"


def test_greyscale_stays_greyscale(tmp_path):
    Image.fromarray(random_pixels((16, 16), seed=7)).save(tmp_path / "grey.jpg")
    image = load_image(tmp_path / "grey.jpg")
    assert image.grey and image.bit_depth == 8
    save_image(tmp_path / "out.jpg", image.rgb, image)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "L"


# ------------------------------------------------------------------------------------- bad files


BAD_FILES = {
    "empty.jpg": (lambda: b"", "empty file"),
    "text.jpg": (lambda: b"shopping list: eggs, milk\n", "not an image"),
    "noise.png": (lambda: np.random.default_rng(9).bytes(700), "not an image"),
    "truncated.jpg": (lambda: encoded("JPEG")[:1500], "truncated file"),
    "truncated.png": (lambda: encoded("PNG")[:5000], "truncated file"),
    "corrupt.png": (lambda: corrupted(encoded("PNG")), "corrupt image data"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_fail_with_the_reason(tmp_path, name):
    make, reason = BAD_FILES[name]
    (tmp_path / name).write_bytes(make())
    with pytest.raises(ImageReadError) as caught:
        load_image(tmp_path / name)
    assert str(caught.value).startswith(f"{tmp_path / name}: ") and reason in str(caught.value)


def test_missing_and_tiny_files(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        load_image(tmp_path / "gone.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ImageReadError, match=r"too small to deblur \(1x1 pixels"):
        load_image(tmp_path / "dot.png")
    assert read_rgb(tmp_path / "dot.png").shape == (1, 1, 3)  # training data has no size floor


def test_pixel_limit_is_checked_on_the_header(tmp_path):
    # A PNG that claims 100000 x 100000 pixels and holds almost none: refused before decoding.
    (tmp_path / "bomb.png").write_bytes(png(100_000, 100_000, 8, 2, bytes(100)))
    with pytest.raises(ImageReadError, match="100000x100000 is 10000 megapixels, over the limit of 150"):
        load_image(tmp_path / "bomb.png")
    Image.new("L", (2000, 1000)).save(tmp_path / "wide.png")
    with pytest.raises(ImageReadError, match="2000x1000 is 2 megapixels, over the limit of 1"):
        load_image(tmp_path / "wide.png", max_pixels=1_000_000)
    assert load_image(tmp_path / "wide.png", max_pixels=2_000_000).rgb.shape == (1000, 2000, 3)


# --------------------------------------------------------------------------- uint8 API and writing


def test_read_rgb_gives_uint8_rgb_for_any_source(tmp_path):
    (tmp_path / "deep.png").write_bytes(png16_bytes(random_pixels((9, 11, 4), np.uint16)))
    Image.fromarray(random_pixels((9, 11, 4))).save(tmp_path / "rgba.png")
    Image.fromarray(random_pixels((9, 11))).save(tmp_path / "grey.png")
    for name in ("deep.png", "rgba.png", "grey.png"):
        rgb = read_rgb(tmp_path / name)
        assert rgb.dtype == np.uint8 and rgb.shape == (9, 11, 3)


@pytest.mark.parametrize("depth", [np.uint8, np.uint16])
def test_save_leaves_only_the_output(tmp_path, depth):
    rgb = random_pixels((10, 10, 3), depth)
    for suffix in (".png", ".tif"):
        save_image(tmp_path / f"out{suffix}", rgb, like(rgb))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png", "out.tif"]


def test_output_format_follows_the_extension():
    assert [output_format(f"a{s}") for s in (".JPG", ".jpeg", ".png", ".tiff", ".webp", ".bmp")] == \
        ["JPEG", "JPEG", "PNG", "TIFF", "WEBP", "BMP"]
    for name in ("a.gif", "a.txt", "a"):
        with pytest.raises(ValueError, match="cannot write"):
            output_format(name)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tensor_conversions_round_trip_exactly(dtype):
    from darkdeblur.pixels import quantize, to_tensor, to_uint8
    pixels = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, (5, 7, 3)).astype(dtype)
    tensor = to_tensor(pixels)
    assert tensor.shape == (1, 3, 5, 7) and tensor.dtype == torch.float32
    assert 0 <= tensor.min() and tensor.max() <= 1
    np.testing.assert_array_equal(quantize(tensor[0].permute(1, 2, 0).numpy(), dtype), pixels)
    if dtype == np.uint8:
        np.testing.assert_array_equal(to_uint8(tensor), pixels)


def test_write_rgb_refuses_formats_it_cannot_write(tmp_path):
    from darkdeblur.image_io import write_rgb
    with pytest.raises(ValueError, match="cannot write .gif"):
        write_rgb(tmp_path / "x.gif", np.zeros((8, 8, 3), np.uint8))
    write_rgb(tmp_path / "x.png", np.full((8, 8, 3), 7, np.uint8))
    assert (read_rgb(tmp_path / "x.png") == 7).all()
