"""Average the generator weights of a run's checkpoints into one checkpoint.

    python scripts/average_checkpoints.py runs/hybrid-s1/step_0001200.pt runs/hybrid-s1/step_0001300.pt \
        runs/hybrid-s1/step_0001400.pt --out runs/hybrid-s1/average-1200-1400.pt

The output scores with benchmarks/hybrid_curve.py, packages with scripts/package_weights.py and
starts runs (--init-weights); it has no optimiser state, so it cannot be resumed
(darkdeblur.weight_average). Name it other than step_*.pt so that --resume never takes it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from darkdeblur.weight_average import save_average


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one run")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if Path(args.out).name.startswith("step_"):
        parser.error(f"{args.out}: a step_*.pt name would be taken by --resume; choose another")
    try:
        state = save_average(args.checkpoints, args.out)
    except (ValueError, FileNotFoundError) as err:
        print(f"average_checkpoints: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: the mean of steps {', '.join(map(str, state['averaged_steps']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
