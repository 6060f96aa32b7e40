"""Benchmark scripts: a plain run prints and leaves the committed tables alone."""


def test_speed_prints_its_table_and_writes_the_committed_files_only_with_write(tmp_path, monkeypatch,
                                                                              load_benchmark, capsys):
    speed = load_benchmark("speed")
    monkeypatch.setattr(speed, "ROOT", tmp_path)  # the committed files would be under ROOT/benchmarks
    monkeypatch.setattr(speed, "GENERATORS", {"tiny U-Net": "tiny", "tiny, inference form": "tiny:inference"})
    monkeypatch.setattr(speed, "BASELINE", "tiny U-Net")
    args = ["--sizes", "32x32", "--repeats", "1"]
    assert speed.main(args) == 0
    assert "| tiny U-Net |" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())
    assert speed.main([*args, "--write"]) == 0
    import csv
    rows = {r["generator"]: r for r in csv.DictReader(open(tmp_path / "benchmarks" / "results" / "speed.csv"))}
    assert rows["tiny U-Net"]["size"] == "32x32"
    # the inference form is the same trained model: its parameters are counted as trained
    assert rows["tiny, inference form"]["params_m"] == rows["tiny U-Net"]["params_m"]
    results = (tmp_path / "benchmarks" / "RESULTS.md").read_text()
    assert "<!-- speed:begin -->" in results and "--sizes 32x32 --write`" in results


def test_hybrid_parts_add_up_to_the_refiners_output(load_benchmark):
    import numpy as np
    import torch

    from darkdeblur.config import hybrid
    from darkdeblur.models import build_generator, init_normal

    parts_of = load_benchmark("hybrid_parts").parts
    torch.manual_seed(0)
    from dataclasses import replace

    # the first bundled refiner's layout: 6 inputs, a correction and a share
    generator = build_generator(replace(hybrid().model, inputs="blurred+deconvolved", correction=True))
    init_normal(generator)  # a random (not zero) last layer: both parts are non-trivial
    generator.eval()
    rng = np.random.default_rng(0)
    blurred = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    deconvolved = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    out = parts_of(generator, blurred, deconvolved)
    assert out["share"].shape == (40, 56) and float(np.abs(out["share"]).mean()) > 0
    # each part alone moves the deconvolution; together (where nothing clips) they are the output
    d = deconvolved.astype(int)
    both = d + (out["correction_only"].astype(int) - d) + (out["fallback_only"].astype(int) - d)
    inside = np.ones(both.shape, bool)
    for image in (out["correction_only"], out["fallback_only"], out["hybrid"]):
        inside &= (image > 2) & (image < 253)  # where no part was clipped
    assert np.abs(out["correction_only"].astype(int) - d).mean() > 0
    assert inside.mean() > 0.3 and np.abs(both - out["hybrid"].astype(int))[inside].max() <= 2


def test_the_learning_curve_appends_one_row_per_checkpoint_and_refuses_other_columns(load_benchmark, tmp_path):
    import csv

    import pytest

    curve = load_benchmark("hybrid_curve")
    rows = [{"step": step, "samples": 16 * step + 100, "set": name, "gain_input": gain, "gain_dcp": gain - 1,
             "worst_input": gain - 2, "worst_dcp": gain - 3}
            for step, gain in ((100, 0.5), (200, 0.75)) for name in ("kodak24", "gopro")]
    path = tmp_path / "curve.csv"
    curve.append_curve(path, "m1", rows, ["kodak24", "gopro"])
    curve.append_curve(path, "m2", rows[:2], ["kodak24", "gopro"])
    lines = list(csv.DictReader(open(path)))
    assert [(r["run"], r["step"], r["samples_seen"]) for r in lines] == [("m1", "100", "1700"), ("m1", "200", "3300"),
                                                                         ("m2", "100", "1700")]
    assert lines[1]["gopro_gain_input"] == "0.75" and lines[1]["kodak24_worst_dcp"] == "-2.25"
    with pytest.raises(SystemExit, match="columns"):
        curve.append_curve(path, "m3", rows, ["gopro"])
