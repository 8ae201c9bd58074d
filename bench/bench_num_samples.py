"""What averaging several sampling chains per frame (`num_samples`) buys: per-row signal-to-noise and AUROC.

For each task, the expert (epsilon 0) and random-action (epsilon 1) evaluation episodes of bench_reward_quality.py
(the same reset seeds 10 000+, cached in WORK/eval/<task>.npz, collected if missing) are scored with each
--num-samples value; printed per task and reward type: the per-row SNR on the task rows (expert-vs-epsilon-1 gap
over the within-episode row std, raw and over a 5-row moving average, `report/quality.py`), AUROC(expert vs
epsilon 1) on the task rows. The cost is one sampling chain per sample (the codec runs once either way).

    python bench/bench_num_samples.py --work runs/ship_mw --tasks door-close-v3,reach-v3
    python bench/bench_num_samples.py --work runs/ship_ad --tasks adroit-door --reward-types likelihood_ratio
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reward_quality import EVAL_SEED, eval_episodes  # noqa: E402  (the evaluation episodes and seeds)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="a bench_reward_quality.py work folder")
    p.add_argument("--tasks", required=True, help="comma-separated")
    p.add_argument("--model", help="default: the shipped model of each task's domain")
    p.add_argument("--reward-types", default="auto", help="comma-separated (auto: the model's own)")
    p.add_argument("--num-samples", default="1,2,4")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import numpy as np
    import torch

    from diffusion_reward.models import RewardModel
    from diffusion_reward.models.pretrained import resolve_model_path
    from diffusion_reward.report.quality import analyse
    from diffusion_reward.reward import RewardScorer, ScoreConfig

    torch.set_num_threads(args.threads)
    print(f"{'task':<18} {'reward type':<17} {'samples':>7} {'SNR':>5} {'SNR 5-row':>9} {'AUROC e1 task rows':>19}")
    for task in args.tasks.split(","):
        model = RewardModel.load(resolve_model_path(args.model, task))
        episodes = [e for e in eval_episodes(task, args.eval_episodes, EVAL_SEED, args.work / "eval" / f"{task}.npz")
                    if e.kind == "epsilon" and e.epsilon in (0.0, 1.0)]
        for reward_type in args.reward_types.split(","):
            for n in map(int, args.num_samples.split(",")):
                scorer = RewardScorer(model, ScoreConfig(reward_type=reward_type, num_samples=n, seed=EVAL_SEED,
                                                         standardize=False, chunk_size=128))
                for e in episodes:
                    e.reward = scorer.score_episode(e.frames).raw
                q = analyse(episodes)
                a = q["task_rows"]["auroc_expert_vs"]["1.0"]
                snr = q["signal_to_noise"]
                print(f"{task:<18} {scorer.cfg.reward_type:<17} {n:>7} {snr['smooth_1']:>5.2f} {snr['smooth_5']:>9.2f} "
                      f"{a['value']:>5.2f} [{a['ci'][0]:.2f},{a['ci'][1]:.2f}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
