import numpy as np
import pytest
import torch
from PIL import Image

from darkdeblur.config import tiny
from darkdeblur.data import BatchStream, SyntheticPairs, device_batch, discover, find_pairs, load_training_images
from darkdeblur.data.stream import make_kernel_bank
from darkdeblur.image_io import list_images
from darkdeblur.make_data import make_noisy_copy, make_synthetic


def test_discover_finds_pairs_and_sharp_photos_in_a_mixed_tree(tmp_path, sharp_folder, paired_folder):
    import shutil
    shutil.copytree(sharp_folder, tmp_path / "sharp" / "set_a")
    shutil.copytree(paired_folder, tmp_path / "gopro_pairs")
    sources = discover(tmp_path)
    assert len(sources.sharp) == 4
    assert len(sources.pairs) == 3
    assert all(b.name == s.name for b, s in sources.pairs)


def test_paired_folder_with_a_missing_sharp_image_is_an_error(tmp_path, paired_folder):
    import shutil
    shutil.copytree(paired_folder, tmp_path / "p")
    (tmp_path / "p" / "sharp" / "coffee.png").unlink()
    with pytest.raises(FileNotFoundError, match="coffee.png: no sharp image"):
        find_pairs(tmp_path / "p")


def test_gopro_layout(tmp_path):
    for seq in ("GOPR0001", "GOPR0002"):
        for sub in ("blur", "blur_gamma", "sharp"):
            (tmp_path / "test" / seq / sub).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / "test" / seq / sub / "000001.png")
    pairs = find_pairs(tmp_path, "gopro", split="test")
    assert len(pairs) == 2 and all(b.parent.name == "blur" for b, _ in pairs)
    gamma = find_pairs(tmp_path, "gopro", split="test", gamma=True)
    assert all(b.parent.name == "blur_gamma" for b, _ in gamma)


def test_synthetic_pairs_are_reproducible_per_index(sharp_folder):
    paths = list_images(sharp_folder)
    a = SyntheticPairs(paths, seed=3, kernel_size=15, min_length=4, max_length=10)
    b = SyntheticPairs(paths[::-1], seed=3, kernel_size=15, min_length=4, max_length=10)
    blurred_a, sharp_a, kernel_a = a[1]
    assert torch.equal(kernel_a, torch.from_numpy(a.kernel(1)))
    assert kernel_a.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.equal(blurred_a, sharp_a)
    assert torch.equal(a[1][0], blurred_a)  # same seed and index: same sample
    assert not torch.equal(kernel_a, torch.from_numpy(SyntheticPairs(paths, seed=4, kernel_size=15).kernel(1)))
    assert len(b) == len(a)


def test_training_batch_shapes_ranges_and_noise(sharp_folder, paired_folder):
    cfg = tiny().train
    sources = discover(sharp_folder)
    sources.extend(discover(paired_folder))
    images = load_training_images(sources, downsample=True)
    stream = BatchStream(images, cfg, seed=0)
    kernels = make_kernel_bank(cfg, 0, stream.bank_size)
    blurred, sharp = device_batch(stream.next(), kernels, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert blurred.shape == sharp.shape == (cfg.batch_size, 3, cfg.crop, cfg.crop)
    assert 0 <= blurred.min() and blurred.max() <= 1
    assert (blurred - sharp).abs().mean() > 0.005  # blurred and noisy, not a copy


def test_batch_stream_state_round_trip_reproduces_the_next_batch(sharp_folder):
    cfg = tiny().train
    images = load_training_images(discover(sharp_folder), downsample=True)
    stream = BatchStream(images, cfg, seed=0)
    for _ in range(5):
        stream.next()
    state = stream.state_dict()
    expected = stream.next()
    other = BatchStream(images, cfg, seed=0)
    other.load_state_dict(state)
    got = other.next()
    assert torch.equal(got.synthetic, expected.synthetic)
    assert torch.equal(got.kernel_index, expected.kernel_index)


def test_make_data_writes_reproducible_pairs_with_kernels(tmp_path, sharp_folder):
    n = make_synthetic(sharp_folder, tmp_path / "a", seed=0, kernel_size=15, max_length=10, progress=False)
    make_synthetic(sharp_folder, tmp_path / "b", seed=0, kernel_size=15, max_length=10, progress=False)
    assert n == 4
    for name in ("astronaut", "rocket"):
        a = np.asarray(Image.open(tmp_path / "a" / "blur" / f"{name}.png"))
        b = np.asarray(Image.open(tmp_path / "b" / "blur" / f"{name}.png"))
        assert np.array_equal(a, b)
        assert np.load(tmp_path / "a" / "kernels" / f"{name}.npy").sum() == pytest.approx(1.0, abs=1e-5)
    # Blur keeps brightness: the mean grey level moves by well under one level.
    sharp = np.asarray(Image.open(tmp_path / "a" / "sharp" / "astronaut.png")).astype(float)
    blurred = np.asarray(Image.open(tmp_path / "a" / "blur" / "astronaut.png")).astype(float)
    assert abs(sharp.mean() - blurred.mean()) < 1.0

    make_noisy_copy(tmp_path / "a", tmp_path / "noisy", seed=0, noise_variance=0.001, progress=False)
    clean = np.asarray(Image.open(tmp_path / "a" / "blur" / "coffee.png")).astype(float) / 255
    noisy = np.asarray(Image.open(tmp_path / "noisy" / "blur" / "coffee.png")).astype(float) / 255
    assert np.var(noisy - clean) == pytest.approx(0.001, rel=0.3)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "noisy" / "sharp" / "coffee.png")),
                          np.asarray(Image.open(tmp_path / "a" / "sharp" / "coffee.png")))


def test_make_data_refuses_two_inputs_that_would_share_an_output_name(tmp_path, sharp_folder):
    import shutil
    (tmp_path / "src" / "a").mkdir(parents=True)
    shutil.copy(sharp_folder / "rocket.png", tmp_path / "src" / "a" / "b.png")
    shutil.copy(sharp_folder / "coffee.png", tmp_path / "src" / "a_b.png")
    with pytest.raises(ValueError, match="would be written as a_b.png"):
        make_synthetic(tmp_path / "src", tmp_path / "out", seed=0, progress=False)
    assert not (tmp_path / "out" / "blur").exists() or not any((tmp_path / "out" / "blur").iterdir())


def test_make_data_refuses_a_non_empty_out_unless_forced(tmp_path, sharp_folder, capsys):
    from darkdeblur.cli import main
    out = tmp_path / "set"
    out.mkdir()
    (out / "notes.txt").write_text("an earlier set")
    assert main(["make-data", "--sharp", str(sharp_folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{out} is not empty" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written
    (tmp_path / "file").write_text("")
    assert main(["make-data", "--sharp", str(sharp_folder), "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["make-data", "--sharp", str(sharp_folder), "--out", str(out), "--force"]) == 0
    assert len(list((out / "blur").iterdir())) == 4 and (out / "notes.txt").is_file()


def test_make_data_and_training_draw_streak_kernels_with_one_set_of_defaults():
    import inspect

    from darkdeblur.blur import random_motion_kernel
    from darkdeblur.config import TrainConfig
    train = TrainConfig()
    expected = {"kernel_size": train.kernel_size, "min_length": train.min_blur_length,
                "max_length": train.max_blur_length, "anxiety": train.blur_anxiety}
    for function in (make_synthetic, SyntheticPairs):
        defaults = {k: v.default for k, v in inspect.signature(function).parameters.items()}
        assert {k: defaults[k] for k in expected} == expected, function
    kernel_defaults = inspect.signature(random_motion_kernel).parameters
    assert (kernel_defaults["size"].default, kernel_defaults["min_length"].default,
            kernel_defaults["max_length"].default) == (train.kernel_size, train.min_blur_length,
                                                        train.max_blur_length)
