"""DDP training on CPU (gloo): data sharding, synchronised BatchNorm, identical weights on every rank."""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from darkdeblur.checkpoint import load_checkpoint
from darkdeblur.config import tiny
from darkdeblur.data import BatchStream
from darkdeblur.data.stream import ShardedOrder, TrainingImages
from darkdeblur.distributed import Context, CpuSyncBatchNorm, state_digest, sync_batchnorm
from darkdeblur.models import build_generator

# Training subprocesses: one thread each, so two ranks (and a busy machine) do not oversubscribe.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


# ----------------------------------------------------------------------------- per-rank data


def test_sharded_order_gives_each_rank_a_disjoint_share_of_every_epoch():
    n, world = 7, 2
    orders = [ShardedOrder(n, seed=5, rank=r, world=world) for r in range(world)]
    first = [[o.next() for _ in range(4)] for o in orders]  # ceil(7 / 2) items per rank
    seen = first[0] + first[1]
    assert sorted(set(seen)) == list(range(n))  # every item once, one repeated as padding
    assert len(seen) - len(set(seen)) == 1
    second = [[o.next() for _ in range(4)] for o in orders]
    assert second != first  # a new permutation each epoch


def test_batch_streams_draw_different_crops_per_rank_and_repeat_per_seed():
    rng = np.random.default_rng(0)
    images = TrainingImages(pairs=[], sharp=[rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
                                             for _ in range(4)])
    cfg = tiny().train
    a0, a0_again, a1 = (BatchStream(images, cfg, seed=1, rank=r, world=2).next() for r in (0, 0, 1))
    assert torch.equal(a0.synthetic, a0_again.synthetic)
    assert not torch.equal(a0.synthetic, a1.synthetic)


# ------------------------------------------------------------------- synchronised BatchNorm


def test_sync_batchnorm_keeps_parameters_and_state_dict_keys():
    generator = build_generator(tiny().model)
    params = [id(p) for p in generator.parameters()]
    keys = list(generator.state_dict())
    converted = sync_batchnorm(generator, Context(rank=0, world=2), torch.device("cpu"))
    assert [id(p) for p in converted.parameters()] == params  # optimisers built earlier still work
    assert list(converted.state_dict()) == keys
    norms = [m for m in converted.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(type(m) is CpuSyncBatchNorm for m in norms)


def _sync_bn_worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    x, weights, state = torch.load(f"{folder}/inputs.pt")
    rows = slice(0, 2) if rank == 0 else slice(2, 6)  # unequal shares: counts must be weighted
    norm = CpuSyncBatchNorm(3).double()
    norm.load_state_dict(state)
    part = x[rows].clone().requires_grad_(True)
    out = norm(part)
    (out * weights[rows]).sum().backward()
    torch.save({"out": out.detach(), "grad_x": part.grad, "grad_weight": norm.weight.grad,
                "grad_bias": norm.bias.grad, "running_mean": norm.running_mean,
                "running_var": norm.running_var}, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()


def test_cpu_sync_batchnorm_on_two_ranks_equals_batchnorm_on_the_whole_batch(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 5, 4, generator=gen, dtype=torch.float64) * 3 + 1
    weights = torch.randn(6, 3, 5, 4, generator=gen, dtype=torch.float64)
    reference = torch.nn.BatchNorm2d(3).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5, generator=gen)
        reference.bias.uniform_(-1, 1, generator=gen)
    torch.save((x, weights, reference.state_dict()), tmp_path / "inputs.pt")
    mp.spawn(_sync_bn_worker, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    whole = x.clone().requires_grad_(True)
    expected = reference(whole)
    (expected * weights).sum().backward()
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), expected.detach())
    # The input gradient needs the other rank's samples: the backward pass is synchronised too.
    torch.testing.assert_close(torch.cat([r["grad_x"] for r in ranks]), whole.grad)
    torch.testing.assert_close(ranks[0]["grad_weight"] + ranks[1]["grad_weight"], reference.weight.grad)
    torch.testing.assert_close(ranks[0]["grad_bias"] + ranks[1]["grad_bias"], reference.bias.grad)
    for r in ranks:
        torch.testing.assert_close(r["running_mean"], reference.running_mean)
        torch.testing.assert_close(r["running_var"], reference.running_var)


# ------------------------------------------------------------------------ torchrun, 2 ranks


def test_torchrun_two_cpu_ranks_train_identical_weights_and_only_rank0_writes(sharp_folder, paired_folder,
                                                                               tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "darkdeblur", "train", "--preset", "tiny", "--data", str(sharp_folder), str(paired_folder),
           "--out", str(out), "--device", "cpu", "--steps", "6", "--batch-size", "2",
           "--crop", "32", "--checkpoint-every", "3", "--no-progress"]
    result = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("2 process(es) on cpu; effective batch 4 (2 per process), lr 0.001") == 1

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    events = [f for f in files if f.startswith("tensorboard/")]
    assert len(events) == 1  # one writer: rank 0's
    assert sorted(set(files) - set(events)) == ["generator.safetensors", "losses.jsonl",
                                                "step_0000003.pt", "step_0000006.pt"]
    assert len((out / "losses.jsonl").read_text().splitlines()) == 6

    ckpt = load_checkpoint(out / "step_0000006.pt")
    ranks = ckpt["ranks"]
    assert len(ranks) == 2
    # Each rank hashed its own generator + discriminator (weights and BatchNorm statistics).
    saved = state_digest([ckpt["generator"], ckpt["discriminator"]])
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"] == saved
    assert ranks[0]["stream"]["rng"] != ranks[1]["stream"]["rng"]  # ranks drew different data
    assert not torch.equal(ranks[0]["random"]["generators"][0], ranks[1]["random"]["generators"][0])
    # The weights trained (BatchNorm statistics moved) and the export is rank 0's model.
    assert int(ckpt["generator"]["encoder.1.2.num_batches_tracked"]) > 6
    exported = load_file(str(out / "generator.safetensors"))
    assert all(torch.equal(exported[k], v) for k, v in ckpt["generator"].items())
