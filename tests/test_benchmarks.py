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
