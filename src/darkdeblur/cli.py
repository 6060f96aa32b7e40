"""The ``darkdeblur`` command: deblur, export, train, eval, make-data.

``main(argv) -> int`` so tests can call it in-process. Errors a user can cause print one line
and return non-zero; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import replace

from . import __version__
from .blur.trajectory import (DEBLURGAN_KERNEL_SIZE, DEBLURGAN_LENGTH, STREAK_KERNEL_SIZE,
                              STREAK_MAX_LENGTH, STREAK_MIN_LENGTH)
from .config import WEAK_FACTOR
from .metrics import PROTOCOLS

COMMANDS = ("deblur", "export", "train", "eval", "make-data", "serve")
_STREAK = (f"streak ({STREAK_KERNEL_SIZE} px kernels, {STREAK_MIN_LENGTH:g}-{STREAK_MAX_LENGTH:g} px "
           f"paths, full exposure)")
_DEBLURGAN = (f"deblurgan (DeblurGAN's {DEBLURGAN_LENGTH:g} px paths, exposure 1/100..1, "
              f"{DEBLURGAN_KERNEL_SIZE} px kernels)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="darkdeblur", description=(
        "Remove motion blur from photos with a conditional GAN trained with a dark-channel loss. "
        "`darkdeblur photo.jpg` is short for `darkdeblur deblur photo.jpg`."))
    parser.add_argument("--version", action="version", version=f"darkdeblur {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("deblur", help="deblur image files and folders")
    # "*", and at least one checked in _cmd_deblur: a required positional would make argparse report
    # it missing before naming a mistyped flag (`darkdeblur --wrong-flag`).
    p.add_argument("inputs", nargs="*", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", default="deblurred",
                   help="output folder (default: ./deblurred), or the output file for one input")
    p.add_argument("--format", choices=["jpg", "png", "tif", "webp", "bmp"],
                   help="output format (default: the input's; GIF becomes PNG)")
    p.add_argument("--quality", type=_int_in(1, 100), default=95, help="JPEG and WebP quality (default 95)")
    _add_engine_arguments(p)
    p.add_argument("--save-kernel", action="store_true",
                   help="also write the estimated blur as NAME.kernel.png beside each output "
                        "(one kernel per region of the photo; dcp)")
    p.add_argument("--half", action="store_true", help="run the model in float16 (GPU only)")
    p.add_argument("--threads", type=_int_in(1, 4096), help="CPU threads (default: PyTorch's choice)")
    p.add_argument("--tile", type=_int_in(0, 65536),
                   help="tile side in pixels for large images; 0 = never tile (default: by device)")
    p.add_argument("--overlap", type=_int_in(0, 4096), help="overlap of neighbouring tiles (default 64)")
    p.add_argument("--max-megapixels", type=float, default=150.0,
                   help="refuse larger images, e.g. decompression bombs (default 150)")
    p.add_argument("--force", action="store_true", help="replace existing outputs (default: skip them)")
    p.add_argument("--overwrite", action="store_true", help="allow an output to replace its own input")

    p = sub.add_parser("export", help="export the generator to ONNX")
    p.add_argument("--onnx", required=True, help="ONNX file to write (dynamic batch, height, width)")
    p.add_argument("--weights", help="weights file (default: the bundled model)")
    p.add_argument("--method", default="gan", help="gan (default; dcp and hybrid have no single network to export)")
    p.add_argument("--opset", type=_int_in(11, 30), default=17, help="ONNX opset (default 17)")

    p = sub.add_parser("train", help="train a model")
    p.add_argument("--preset", default="default",
                   help="paper, dc0, dc250, dc250p, deblurgan, default, hybrid (the refiner of the dcp "
                        "engine; --data is a refiner set from make-data --refiner-set), tiny")
    p.add_argument("--data", nargs="+", required=True, help="training folders")
    p.add_argument("--layout", default="auto", choices=["auto", "paired", "gopro", "sharp"],
                   help="how --data folders hold images: paired (blur/ and sharp/ of the same names), "
                        "gopro (GOPRO_Large sequences), sharp (photos to blur synthetically), or "
                        "auto (default: paired where blur/ and sharp/ exist, sharp photos elsewhere, "
                        "searching sub-folders)")
    p.add_argument("--out", required=True, help="run directory for checkpoints and logs")
    p.add_argument("--steps", type=int, help="total optimisation steps; replaces the preset's "
                                               "schedule (paper presets: 15 epochs) and says so")
    p.add_argument("--kernel-recipe", choices=["streak", "deblurgan"],
                   help=f"synthetic blur kernels: {_STREAK} or {_DEBLURGAN} (the paper presets')")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-noise-variance", type=float,
                   help="Gaussian noise on blurred inputs, variance ~ U(0, this) (paper: 0.002)")
    p.add_argument("--adv-warmup-steps", type=int,
                   help="steps on content losses only before the adversarial term starts")
    p.add_argument("--adv-weight", type=float,
                   help="weight of the adversarial term (the paper's 1; 0 trains without the discriminator)")
    p.add_argument("--dark-weight", type=float,
                   help="weight of the dark-channel loss (the paper's 250; 0 for its ablation)")
    correction = p.add_mutually_exclusive_group()
    correction.add_argument("--no-correction", dest="correction", action="store_false", default=None,
                            help="hybrid preset: the refiner only chooses, per pixel, between the deconvolution "
                                 "and the blurred photo (no learned correction; see docs/training-notes.md)")
    correction.add_argument("--correction", dest="correction", action="store_true", default=None,
                            help="hybrid preset: the refiner also outputs a learned correction of the "
                                 "deconvolution (with --init-weights from a refiner without one, the "
                                 "correction starts at zero)")
    p.add_argument("--refiner-inputs", choices=["blurred+deconvolved", "blurred+deconvolved+misfit",
                                                "blurred+deconvolved+misfit+fallback",
                                                "blurred+deconvolved+misfit+weak"],
                   help="hybrid preset: what the refiner sees; +misfit adds a channel saying how much of "
                        "the blur each region's deconvolution fails to explain (with --init-weights from a "
                        "refiner without it, that channel starts at zero weight); +fallback adds the share "
                        "back to the photo the dcp engine's fall-back rule gives, where the refiner's own "
                        "share starts (from a refiner without it, the refiner starts as that rule); +weak "
                        "adds the deconvolution at a fraction of the prior's weight (make-data "
                        "--weak-deconvolution; from a refiner without it, those channels start at zero weight)")
    p.add_argument("--weak-mix", action="store_true",
                   help="hybrid preset with --refiner-inputs ...+weak: the refiner also outputs a per-pixel "
                        "share of the way from the deconvolution to the weak deconvolution (with "
                        "--init-weights from a refiner without it, the share starts at zero)")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--max-seconds", type=float,
                   help="end this invocation after this many seconds of training, checkpointed "
                        "(a time budget; resume later)")
    p.add_argument("--stop-after", type=int, help="end this invocation after N steps (resume later)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--init-weights", help="start the generator from these weights")
    p.add_argument("--vgg-weights", help="torchvision vgg19 weights for the perceptual loss")
    p.add_argument("--device", default="auto")
    p.add_argument("--deterministic", action="store_true", help="use deterministic algorithms only")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--val", help="validation folder (pairs or sharp photos): PSNR and image grids "
                                 "in TensorBoard")
    p.add_argument("--validate-every", type=int,
                   help="validate every N steps (default: the preset's, else --checkpoint-every)")

    p = sub.add_parser("eval", help="PSNR/SSIM on paired images")
    _add_engine_arguments(p)
    p.add_argument("--pairs", required=True, help="folder with blur/ and sharp/ (or GOPRO_Large)")
    p.add_argument("--layout", default="paired", choices=["paired", "gopro"])
    p.add_argument("--protocol", default="full", choices=list(PROTOCOLS),
                   help="full (the default: whole frames at their own size); paper (the "
                        "authors' order: halve, resize to 360x360, then "
                        "restore); paper-after (restore the halved frame, then resize)")
    p.add_argument("--csv", help="write per-image numbers here")
    p.add_argument("--json", help="write the summary here")
    p.add_argument("--bn-mode", choices=["running", "batch"], default=None,
                   help="gan test-time mode: running (BatchNorm running statistics, no dropout) "
                        "or batch (batch statistics, dropout on, as the paper's code tested); "
                        "default: the weights' own")

    p = sub.add_parser("make-data", help="write a synthetic blurred/sharp set, or a noisy copy")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--sharp", help="folder of sharp photos to blur")
    source.add_argument("--pairs", help="paired folder to copy with noise added to blur/")
    source.add_argument("--estimate-kernels", metavar="DATA", nargs="+",
                        help="training folders (as for train --data): draw blurred training crops and "
                             "cache the kernels the dcp engine estimates on them, for training a "
                             "refiner on the engine's own output; an interrupted run continues")
    source.add_argument("--refiner-set", metavar="KERNEL_CACHE",
                        help="a kernel cache made by --estimate-kernels: write its crops with the dcp "
                             "engine's deconvolution of each (the hybrid preset's training data, "
                             "~0.3 s per crop per worker); an interrupted run continues")
    p.add_argument("--weak-deconvolution", action="store_true",
                   help=f"with --refiner-set: also deconvolve each crop at {WEAK_FACTOR:g} of the prior's "
                        "weight, the input of a refiner trained with --refiner-inputs ...+weak; a set "
                        "made before gets only these")
    p.add_argument("--count", type=_int_in(1, 10**7), default=4000,
                   help="with --estimate-kernels: number of crops (default 4000)")
    p.add_argument("--max-noise-variance", type=float, default=0.002,
                   help="with --estimate-kernels: noise variance ~ U(0, this) on synthetic crops (default 0.002)")
    p.add_argument("--pair-fraction", type=float, default=0.25,
                   help="with --estimate-kernels: share of crops from real blurred/sharp pairs (default 0.25)")
    p.add_argument("--crop", type=_int_in(64, 4096), default=256,
                   help="with --estimate-kernels: crop side in pixels (default 256)")
    p.add_argument("--region", type=_int_in(0, 8192), default=0,
                   help="with --estimate-kernels: draw regions of this side and crop each at its most "
                        "textured window, where the dcp engine estimates a region's kernel (its "
                        "--region is 512); 0, the default, crops random windows")
    p.add_argument("--workers", type=_int_in(1, 256), default=2,
                   help="with --estimate-kernels or --refiner-set: processes, one thread each (default 2)")
    p.add_argument("--out", required=True,
                   help="folder to create with blur/, sharp/, kernels/ and recipe.json; it must be new "
                        "or empty unless --force")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out, replacing "
                                                        "files of the same names")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the kernels and the noise (default 0): the same seed and photos "
                        "write the same set")
    p.add_argument("--noise-var", type=float, default=None,
                   help="Gaussian noise variance on blurred images (default 0; 0.001 with --pairs)."
                        " Added to the blurred image, the sharp one stays clean; the paper's "
                        "GOPRO-noise set added it to the 11 video frames before averaging and "
                        "used the noisy middle frame as sharp, which needs the frames")
    p.add_argument("--kernel-recipe", default="streak", choices=["streak", "deblurgan"],
                   help=f"with --sharp: {_STREAK}, the default, or {_DEBLURGAN}")

    p = sub.add_parser("serve", help="a local web page to deblur photos and compare them", description=(
        "A web page to deblur photos: choose or drop them, pick the method, compare the result with "
        "a before/after slider and a zoom, see the estimated blur kernel (dcp), download the result "
        "written as `deblur` writes it. Photos are restored one at a time on the device; a full "
        "queue, an upload over --max-upload-mb and a photo over --max-megapixels are refused with "
        "a message. Uploads and results stay in memory and a private temporary folder that is "
        "removed on exit. Needs the serve extra: pip install 'darkdeblur[serve]'."))
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; any other "
                        "lets anyone on the network use it)")
    p.add_argument("--port", type=_int_in(0, 65535), default=8000, help="port (default 8000; 0: any free one)")
    _add_engine_arguments(p)
    p.add_argument("--max-megapixels", type=float, default=150.0,
                   help="refuse larger photos, e.g. decompression bombs (default 150)")
    p.add_argument("--max-upload-mb", type=float, default=100.0, help="refuse larger files (default 100)")
    p.add_argument("--queue", type=_int_in(0, 1000), default=4,
                   help="photos that may wait while one is restored; more are refused (default 4)")
    for command in sub.choices.values():  # `darkdeblur deblur x.jpg --debug` as well as before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks for errors")
    return parser


def _add_engine_arguments(p: argparse.ArgumentParser) -> None:
    from .engines import DEFAULT_METHOD, METHODS, PRIORS
    p.add_argument("--method", choices=METHODS, default=None,
                   help=f"gan: the trained dark-channel GAN; dcp: blind deconvolution with the dark "
                        f"channel prior, no training; hybrid: dcp, then a GAN-trained refiner of its "
                        f"deconvolution (default: the one --weights were trained for, else {DEFAULT_METHOD})")
    p.add_argument("--weights", help="weights file for gan or the hybrid refiner (default: the bundled ones)")
    p.add_argument("--prior", choices=PRIORS, default="l0",
                   help="dcp kernel estimation: l0 (L0 gradients; default, faster) or dark "
                        "(dark channel + L0 gradients, Pan et al. 2016)")
    p.add_argument("--kernel-size", type=_odd_in(3, 255),
                   help="dcp: largest blur to look for, in pixels at a working size of 1280 px "
                        "(odd; default 25)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")


def _odd_in(low: int, high: int):
    whole = _int_in(low, high)

    def parse(text: str) -> int:
        value = whole(text)
        if value % 2 == 0:
            raise argparse.ArgumentTypeError(f"{value} is even; the kernel needs a centre pixel")
        return value
    return parse


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value
    return parse


def _engine_options(args) -> dict:
    return {"method": args.method, "kernel_size": args.kernel_size, "prior": args.prior}


def _first_line(err: BaseException) -> str:
    """Library messages can span lines (torch's often do); the user gets one."""
    return (str(err).strip().splitlines() or [""])[0]


def _engine(args, device: str | None = None, **settings):
    """The engine the flags ask for. Whatever is wrong with them (device, weights file, tiles,
    --half) is found here, before any photo is read, and raised as a UsageError (exit 2)."""
    from .deblur_files import UsageError
    from .inference import load_model
    if settings.get("half") and settings.get("method") == "dcp":
        raise UsageError("--half runs the gan engine in float16; dcp has no network")
    try:
        return load_model(args.weights, device or args.device, **settings)
    except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: tensors unlike their config
        raise UsageError(_first_line(err)) from err


def _cmd_deblur(args) -> int:
    import torch

    from .deblur_files import UsageError, deblur_files, plan_jobs
    # Everything a user can get wrong is a UsageError (exit 2) found before the first photo is read:
    # the plan (inputs and -o), then the engine (device, weights, tiles, --half; checked where it is built).
    if not args.inputs:
        raise UsageError("the following arguments are required: inputs (image files or folders)")
    if args.max_megapixels <= 0:
        raise UsageError("--max-megapixels must be positive")
    jobs = plan_jobs(args.inputs, args.out, args.format)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _engine(args, tile=args.tile, overlap=args.overlap, half=args.half, progress=True,
                    **_engine_options(args))
    summary = deblur_files(model, jobs, fmt=args.format, quality=args.quality,
                           force=args.force, overwrite=args.overwrite, save_kernel=args.save_kernel,
                           max_pixels=int(args.max_megapixels * 1e6), debug=args.debug)
    print(summary.line())
    return 0 if summary.failed == 0 else 1


def _cmd_export(args) -> int:
    from .deblur_files import UsageError
    from .engines import METHODS
    from .export import export_onnx
    if args.method not in METHODS:
        raise UsageError(f"--method {args.method}: unknown; export takes gan")
    if args.method != "gan":
        what = "the classical engine has no network" if args.method == "dcp" else \
            "the hybrid engine's estimation and deconvolution are not a network"
        raise UsageError(f"--method {args.method}: {what} to export; ONNX export takes gan weights")
    model = _engine(args, device="cpu", tile=0)
    export_onnx(model.generator, args.onnx, opset=args.opset, cfg=model.cfg)
    print(f"darkdeblur export: wrote {args.onnx}")
    return 0


def _cmd_train(args) -> int:
    from .blur.trajectory import DEBLURGAN_KERNEL_SIZE
    from .config import preset, with_steps
    from .deblur_files import UsageError
    from .trainer import train
    try:
        cfg = preset(args.preset)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if args.steps is not None:
        if cfg.train.epochs > 0:
            print(f"darkdeblur train: --steps {args.steps} replaces preset {cfg.preset}'s schedule "
                  f"of {cfg.train.epochs:g} epochs", flush=True)
        cfg = with_steps(cfg, args.steps)
    overrides = {k: v for k, v in {"batch_size": args.batch_size,
                                   "crop": args.crop, "lr": args.lr, "seed": args.seed,
                                   "checkpoint_every": args.checkpoint_every,
                                   "validate_every": args.validate_every,
                                   "max_noise_variance": args.max_noise_variance,
                                   "kernel_recipe": args.kernel_recipe}.items() if v is not None}
    if args.kernel_recipe == "deblurgan":
        overrides["kernel_size"] = DEBLURGAN_KERNEL_SIZE
    cfg = replace(cfg, train=replace(cfg.train, **overrides))
    if args.adv_warmup_steps is not None:
        cfg = replace(cfg, loss=replace(cfg.loss, adv_warmup_steps=args.adv_warmup_steps))
    if args.dark_weight is not None:
        cfg = replace(cfg, loss=replace(cfg.loss, lambda_dark=args.dark_weight))
    if args.adv_weight is not None:
        cfg = replace(cfg, loss=replace(cfg.loss, lambda_adv=args.adv_weight))
    if args.refiner_inputs is not None:
        if not cfg.model.refiner:
            print(f"darkdeblur train: --refiner-inputs is for the hybrid preset, not {cfg.preset}", file=sys.stderr)
            return 2
        cfg = replace(cfg, model=replace(cfg.model, inputs=args.refiner_inputs))
    if args.correction is not None:
        if not cfg.model.fallback_mix:
            flag = "--correction" if args.correction else "--no-correction"
            print(f"darkdeblur train: {flag} is for the hybrid preset, not {cfg.preset}", file=sys.stderr)
            return 2
        cfg = replace(cfg, model=replace(cfg.model, correction=args.correction))
    if args.weak_mix:
        if not (cfg.model.fallback_mix and cfg.model.sees_weak):
            print("darkdeblur train: --weak-mix is for the hybrid preset with --refiner-inputs "
                  "blurred+deconvolved+misfit+weak", file=sys.stderr)
            return 2
        cfg = replace(cfg, model=replace(cfg.model, weak_mix=True))
    if args.val and not cfg.train.validate_every:
        cfg = replace(cfg, train=replace(cfg.train, validate_every=cfg.train.checkpoint_every))
    summary = train(cfg, args.data, args.out, layout=args.layout, resume=args.resume,
                    device=args.device, vgg_weights=args.vgg_weights, init_weights=args.init_weights,
                    deterministic=args.deterministic, progress=not args.no_progress,
                    stop_after=args.stop_after, val=args.val, max_seconds=args.max_seconds)
    if "weights" in summary and summary["history"]:  # with none, train said there was nothing to do
        print(f"darkdeblur train: steps {summary['start']}..{summary['steps']} in "
              f"{summary['seconds']:.0f} s, last l1 {summary['history'][-1]['l1']:.4f}; "
              f"weights {summary['weights']}")
    return 0


def _cmd_eval(args) -> int:
    from .data import find_pairs
    from .deblur_files import UsageError
    from .evaluate import evaluate_pairs, format_summary, write_csv, write_json
    model = _engine(args, test_mode=args.bn_mode, **_engine_options(args))
    try:  # a folder that is not there, or holds no pairs, is a usage error: nothing was scored
        pairs = find_pairs(args.pairs, args.layout)
    except FileNotFoundError as err:
        raise UsageError(_first_line(err)) from err
    summary = evaluate_pairs(model, pairs, args.protocol)
    summary["engine"] = model.describe()
    print(format_summary(summary, label=f"{args.pairs} ({model.method}): "))
    if args.csv:
        write_csv(summary, args.csv)
    if args.json:
        write_json(summary, args.json)
    return 0


def _cmd_make_data(args) -> int:
    from pathlib import Path

    from .make_data import make_noisy_copy, make_synthetic
    out = Path(args.out)
    if args.estimate_kernels:  # a cache continues where it stopped; its recipe guards against mixing
        from .data.engine_kernels import CropRecipe, estimate_training_kernels
        from .data.folders import DataSources, discover
        sources = DataSources()
        for folder in args.estimate_kernels:
            sources.extend(discover(folder, "auto"))
        recipe = CropRecipe(count=args.count, crop=args.crop, seed=args.seed, pair_fraction=args.pair_fraction,
                            max_noise_variance=args.max_noise_variance, region=args.region)
        n = estimate_training_kernels(sources, out, recipe, workers=args.workers)
        print(f"darkdeblur make-data: kernel cache of {n} crops in {out}")
        return 0
    if args.refiner_set:
        from .data.refiner_set import build_refiner_set, build_weak_deconvolutions
        try:
            n = build_refiner_set(args.refiner_set, out, workers=args.workers)
            if args.weak_deconvolution:
                build_weak_deconvolutions(out, WEAK_FACTOR, workers=args.workers)
        except (FileNotFoundError, ValueError) as err:
            print(f"darkdeblur make-data: {err}", file=sys.stderr)
            return 2
        weak = f", and their deconvolution at {WEAK_FACTOR:g} of the weight" if args.weak_deconvolution else ""
        print(f"darkdeblur make-data: {n} refiner crops (blurred, deconvolved, sharp){weak} in {out}")
        return 0
    refusal = None  # checked before any work: a set written over another mixes the two
    if out.exists() and not out.is_dir():
        refusal = f"--out {out} is a file, not a folder"
    elif out.is_dir() and any(out.iterdir()) and not args.force:
        refusal = f"--out {out} is not empty; pass --force to write into it, or choose a new --out"
    if refusal:
        print(f"darkdeblur make-data: {refusal}", file=sys.stderr)
        return 2
    if args.sharp:
        n = make_synthetic(args.sharp, args.out, args.seed, args.noise_var or 0.0,
                           kernel_recipe=args.kernel_recipe)
    else:
        n = make_noisy_copy(args.pairs, args.out, args.seed,
                            0.001 if args.noise_var is None else args.noise_var)
    print(f"darkdeblur make-data: wrote {n} pairs to {args.out}")
    return 0


def _cmd_serve(args) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("darkdeblur serve: needs Starlette and uvicorn: pip install 'darkdeblur[serve]'", file=sys.stderr)
        return 2
    from .devices import resolve_device
    from .engines import METHODS, load_engine, resolve_method
    from .serve import create_app
    from .serve.server import ServeError, run
    if args.max_megapixels <= 0 or args.max_upload_mb <= 0:
        print("darkdeblur serve: --max-megapixels and --max-upload-mb must be positive", file=sys.stderr)
        return 2
    device, method = resolve_device(args.device), resolve_method(args.method, args.weights)

    def engine(name: str):
        # --weights belong to --method; the page's other methods use their bundled weights
        return load_engine(name, weights=args.weights if name == method else None, device=str(device),
                           kernel_size=args.kernel_size,
                           prior=args.prior)
    try:
        first = engine(method)  # bad weights are found now, not on the first photo
        app = create_app(lambda name: first if name == method else engine(name), METHODS, method,
                         device=str(device), max_upload_bytes=int(args.max_upload_mb * 1e6),
                         max_pixels=int(args.max_megapixels * 1e6), waiting=args.queue)
        run(app, args.host, args.port, f"{method} on {device}")
    except (ServeError, FileNotFoundError, ValueError) as err:
        first_line = (str(err).strip().splitlines() or [""])[0]
        print(f"darkdeblur serve: {first_line}", file=sys.stderr)
        return 2
    return 0


HANDLERS = {"deblur": _cmd_deblur, "export": _cmd_export, "train": _cmd_train, "eval": _cmd_eval,
            "make-data": _cmd_make_data, "serve": _cmd_serve}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `darkdeblur photo.jpg` means `darkdeblur deblur photo.jpg`, and `darkdeblur -o out photo.jpg`
    # `darkdeblur deblur -o out photo.jpg`: a first word (after --debug) that is no command is
    # taken for deblur's when it is a flag or an existing file or folder. Any other word is
    # refused, so that a mistyped command (`deblurr photo.jpg`) deblurs nothing.
    lead = 0
    while lead < len(argv) and argv[lead] == "--debug":
        lead += 1
    if lead < len(argv) and argv[lead] not in COMMANDS and argv[lead] not in ("-h", "--help", "--version"):
        word = argv[lead]
        if not word.startswith("-") and not os.path.exists(word):
            near = difflib.get_close_matches(word, COMMANDS, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"commands: {', '.join(COMMANDS)}"
            print(f"darkdeblur: unknown command or file {word!r}; {hint}", file=sys.stderr)
            return 2
        argv.insert(lead, "deblur")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else 2
    try:
        return HANDLERS[args.command](args)
    except KeyboardInterrupt:
        print("darkdeblur: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - user-facing boundary
        if args.debug:
            raise
        from .deblur_files import UsageError
        from .devices import DeviceError
        from .image_io import ImageReadError
        from .train_setup import TrainingError
        if isinstance(err, (UsageError, DeviceError)):  # found before any work: exit 2, as the README says
            print(f"darkdeblur {args.command}: {_first_line(err)}", file=sys.stderr)
            return 2
        known = (FileNotFoundError, ImageReadError, TrainingError, ValueError, PermissionError)
        kind = "" if isinstance(err, known) else f"{type(err).__name__}: "
        print(f"darkdeblur {args.command}: {kind}{_first_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
