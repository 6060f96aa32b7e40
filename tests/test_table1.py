"""benchmarks/table1.py end to end on the CPU: pack, train every row briefly, score, write."""
import csv
import json
import shutil
from pathlib import Path

import numpy as np


def _fake_shared(root: Path, sharp_folder: Path, paired_folder: Path) -> Path:
    """The shared data layout the pack reads, from the test photos (few dev images: scoring
    every row, mode and protocol is most of the run's time)."""
    shutil.copytree(paired_folder, root / "train/gopro_pairs")
    shutil.copytree(sharp_folder, root / "train/sharp/photos")
    for sub, names in (("dev/gopro", ["coffee"]), ("dev/paper_samples", ["chelsea"])):
        for kind in ("blur", "sharp"):
            (root / sub / kind).mkdir(parents=True)
            for name in names:
                shutil.copy(paired_folder / kind / f"{name}.png", root / sub / kind)
    (root / "dev/sharp/kodak24").mkdir(parents=True)
    for name in ("astronaut", "rocket"):
        shutil.copy(sharp_folder / f"{name}.png", root / "dev/sharp/kodak24")
    return root


def test_table1_packs_trains_scores_and_writes_on_cpu(tmp_path, sharp_folder, paired_folder, load_benchmark):
    table1 = load_benchmark("table1")
    shared = _fake_shared(tmp_path / "shared", sharp_folder, paired_folder)
    pack = tmp_path / "pack"
    assert table1.main(["pack", "--shared", str(shared), "--out", str(pack)]) == 0
    manifest = json.loads((pack / "manifest.json").read_text())
    assert manifest["sets"] == {"dev/gopro": 1, "dev/paper_samples": 1, "train/gopro_pairs": 3,
                                "dev/sharp/kodak24": 2, "train/sharp/photos": 4}
    # lossless: the packed pixels are the shared ones
    packed = table1.read_rgb(pack / "dev/gopro/sharp/coffee.webp")
    np.testing.assert_array_equal(packed, table1.read_rgb(paired_folder / "sharp/coffee.png"))

    calls = []

    def identity(rgb, kernel):
        calls.append(kernel is not None)
        return rgb

    out = tmp_path / "out"
    assert table1.main(["run", "--data", str(pack), "--out", str(out), "--work", str(tmp_path / "work"),
                        "--device", "cpu", "--model", "tiny", "--seconds", "0.2", "--max-steps", "2",
                        "--seeds", "0", "1", "--batch-size", "2", "--crop", "32", "--workers", "1",
                        "--ceiling-steps", "1", "--inference-size", "64x48", "--deadline", "300",
                        "--reserve", "1"], extra_restorers={"identity": identity}) == 0
    text = (out / "table1.md").read_text()
    for row in ("dc0", "dc250", "deblurgan_l1", "wiener (true kernel)", "richardson-lucy (true kernel)",
                "identity"):
        assert f"| {row} |" in text
    assert "needs --vgg-weights" in text  # dc250p and the faithful DeblurGAN say why they are missing
    budgets = json.loads((out / "budgets.json").read_text())
    trained = [b for b in budgets["rows"] if "skipped" not in b]
    assert {(b["row"], b["seed"]) for b in trained} == {(r, s) for r in ("dc0", "dc250", "deblurgan_l1")
                                                       for s in (0, 1)}
    assert all(1 <= b["steps"] <= 2 and b["ceiling_samples_per_s"] > 0 for b in trained)
    assert budgets["speed"]["generator"] == "tiny" and budgets["speed"]["ms_eager"] > 0
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    protocols = {(r["method"], r["test_mode"], r["protocol"]) for r in rows}
    assert ("dc250", "batch", "paper") in protocols and ("dc250", "running", "full") in protocols
    # references only where the true kernel fits the method's input: never under "paper"
    assert {r["protocol"] for r in rows if r["method"].startswith("wiener")} == {"full"}
    assert any(calls) and not all(calls)  # the hook got kernels on synthetic sets only
