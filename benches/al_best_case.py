"""Best case for any selection strategy on the `al_efficiency` test set: the loop's seed labels
plus k frames taken from the test set itself.

`benches/al_efficiency.py` asks how many labels active learning needs to reach a force RMSE of
0.05 eV/Å on an EMT test set of MD frames. Whatever a sampler and a selection do, they cannot hand
the committee frames more relevant to that test set than frames of the test set. So this script
trains the committee exactly as the loop's second generation is trained (the example config's
model, the seed labels split into training and validation by the loop's content hash, fine-tuned
from the committee of the seeds when the config fine-tunes) on the seeds plus k test frames drawn
at random, and scores it on the other test frames. If even that stays above the target at some
number of labels, no selection reaches the target with that many labels.

    python benches/al_best_case.py RUN_DIR            # RUN_DIR: a finished `alal run` of the example
    python benches/al_best_case.py RUN_DIR --k 2,4,8 --draws 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from alal.config import load_config
from alal.examples import example_path
from alal.loop import holdout_split, new_model
from alal.store import Store
from alal.testing.emt import emt_aluminium
from al_efficiency import test_rmse  # benches/ is the script's directory, first on sys.path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a run of the example config (its generation-0 labels are the seeds)")
    ap.add_argument("--k", type=str, default="2,4,8", help="numbers of test frames added to the seeds")
    ap.add_argument("--draws", type=int, default=3, help="random draws of test frames per k")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    cfg = load_config(example_path("aluminium"))
    test = emt_aluminium(50, seed=1, sizes=(32, 108))  # the test set of al_efficiency.py
    seeds = [a for a in Store.open(args.run_dir).labelled() if int(a.info["generation"]) == 0]
    seed_train, seed_valid = holdout_split(seeds, cfg.loop.validation_fraction)

    def fit(extra: list, warm=None):
        model = new_model(cfg)
        model.fit(seed_train + extra, seed_valid, warm_start=warm)
        return model

    t0 = time.perf_counter()
    base = fit([])
    rows = [{"labels": len(seeds), "test_frames": 0, "force_rmse": [test_rmse(base, test)]}]
    print(f"{len(seeds)} seed labels: test force RMSE {rows[0]['force_rmse'][0]:.4f} eV/Å", flush=True)
    rng = np.random.default_rng(7)
    for k in (int(x) for x in args.k.split(",")):
        rmses = []
        for _ in range(args.draws):
            picked = set(rng.choice(len(test), size=k, replace=False).tolist())
            model = fit([test[i] for i in sorted(picked)], warm=base if cfg.loop.fine_tune else None)
            rmses.append(test_rmse(model, [t for i, t in enumerate(test) if i not in picked]))
        rows.append({"labels": len(seeds) + k, "test_frames": k, "force_rmse": rmses})
        print(f"{len(seeds)} seeds + {k} test frames ({len(seeds) + k} labels): force RMSE on the other "
              f"{len(test) - k} test frames " + ", ".join(f"{r:.4f}" for r in rmses)
              + f" eV/Å  [{time.perf_counter() - t0:.0f} s]", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"run_dir": str(args.run_dir), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
