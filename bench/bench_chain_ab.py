"""Scoring speed of this checkout against another one (an older commit), interleaved in one run.

A shared machine's speed drifts 2-6x from minute to minute, so a speed-up is only measured as a ratio of runs that
alternate: each round times the baseline checkout, then this one, in fresh processes (one thread unless --threads; `PYTHONPATH`
selects the checkout; the measured code is each checkout's own). Each child scores the same episode, tokens
pre-computed (the chain alone), then streams frames one at a time (codec + chain), and prints its reward sum, so
the table also shows whether the two checkouts give the same rewards.

    git worktree add /tmp/baseline <commit>
    OMP_NUM_THREADS=1 python bench/bench_chain_ab.py --baseline /tmp/baseline
    OMP_NUM_THREADS=1 python bench/bench_chain_ab.py --baseline /tmp/baseline --cases base:likelihood paper:entropy
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "diffusion_reward" / "models" / "pretrained" / "metaworld.safetensors"

# One measurement, run in a child process by whichever checkout PYTHONPATH names.
CHILD = """
import sys, time, numpy as np, torch
model_name, rows, reward_type, dtype, shipped, bench, threads = sys.argv[1], int(sys.argv[2]), *sys.argv[3:8]
torch.set_num_threads(int(threads))
sys.path.insert(0, bench)
from bench_reward_speed import episode  # the same moving-square episode; imports the checkout on PYTHONPATH
from diffusion_reward.models import RewardModel
from diffusion_reward.reward import RewardScorer, ScoreConfig
model = RewardModel.load(shipped) if model_name == "base" else RewardModel.from_preset(model_name, seed=0)
frames = episode(rows)
tokens = model.tokenize(frames)
scorer = RewardScorer(model, ScoreConfig(standardize=False, dtype=dtype, reward_type=reward_type))
scorer.score_token_episode(tokens[:4])  # warm-up
start = time.perf_counter()
raw = scorer.score_token_episode(tokens).raw
batch = (time.perf_counter() - start) / rows
stream = scorer.stream()
for f in frames[:2]:
    stream.push(f)
start = time.perf_counter()
for f in frames[2:8]:
    stream.push(f)
print(batch * 1000, (time.perf_counter() - start) / 6 * 1000, float(raw.astype(np.float64).sum()))
"""


def run_child(checkout: Path, case: str, rows: int, dtype: str, threads: int) -> tuple[float, float, float]:
    model, reward_type = case.split(":")
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(rows), reward_type, dtype, str(SHIPPED),
                          str(REPO / "bench"), str(threads)],
                         env=env, capture_output=True, text=True, cwd="/", check=True).stdout
    batch, stream, total = map(float, out.split()[-3:])
    return batch, stream, total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    p.add_argument("--cases", nargs="+", default=["base:likelihood", "base:entropy", "paper:entropy"],
                   help="MODEL:REWARD_TYPE; MODEL is base (the shipped MetaWorld model) or a preset (random weights)")
    p.add_argument("--rows", type=int, default=64, help="rows of the batch measurement (paper: a quarter)")
    p.add_argument("--rounds", type=int, default=2, help="alternations of baseline and this checkout per case")
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per child")
    args = p.parse_args()
    print(f"baseline {args.baseline}, this {REPO}; {args.dtype}, {args.threads} thread(s) per child, {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    header = (f"{'case':<18} {'batch ms/row base':>17} {'this':>7} {'speed-up':>8} {'stream ms/frame base':>20} "
              f"{'this':>7} {'speed-up':>8}  same rewards")
    print(header + "\n" + "-" * len(header))
    for case in args.cases:
        rows = max(8, args.rows // 4) if case.startswith("paper") else args.rows
        runs = {"base": [], "this": []}
        for _ in range(args.rounds):
            runs["base"].append(run_child(args.baseline, case, rows, args.dtype, args.threads))
            runs["this"].append(run_child(REPO, case, rows, args.dtype, args.threads))
        b, t = (np.median(np.array(runs[k]), axis=0) for k in ("base", "this"))
        same = all(abs(r[2] - runs["base"][0][2]) <= 1e-6 * abs(r[2]) for r in runs["base"] + runs["this"])
        print(f"{case:<18} {b[0]:>17.1f} {t[0]:>7.1f} {b[0] / t[0]:>7.2f}x {b[1]:>20.1f} {t[1]:>7.1f} "
              f"{b[1] / t[1]:>7.2f}x  {'yes' if same else 'NO'}")
    print("medians over the rounds; same rewards: every child's reward sum within 1e-6 (relative) of the first's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
