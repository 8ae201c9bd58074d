"""`diffusion-reward report`: reward QA report (metrics.json, report.md, PNG plots)."""
from __future__ import annotations

import argparse

from ..outputs import check_output
from ..reward_types import REWARD_TYPE_HELP
from ..scoring_options import REPORT_OPTIONS, add_scoring_arguments, scoring_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="reward model file (default: the shipped model of the task's domain)")
    p.add_argument("--task", required=True, help="task to collect (or to check the dataset against)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.json, report.md and plots")
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty --out folder")
    p.add_argument("--episodes", type=int, default=5, help="episodes per epsilon in simulation (default 5)")
    p.add_argument("--data", metavar="DATASET", help="read episodes (with an `epsilon` attribute) instead of collecting")
    p.add_argument("--compare-model", metavar="MODEL", help="second model scored on the same episodes")
    p.add_argument("--max-steps", type=int, help="agent steps per simulated episode (default: the task's)")
    p.add_argument("--reward-type", type=lambda text: tuple(t.strip() for t in text.split(",")), default=("auto",),
                   metavar="TYPE[,TYPE...]",
                   help=f"{REWARD_TYPE_HELP}. Several, comma-separated (e.g. entropy,likelihood), score every model "
                   "with each and add a side-by-side table: the paper's 2 x 2 with a VideoGPT --compare-model")
    add_scoring_arguments(p, REPORT_OPTIONS)
    p.add_argument("--seed", type=int, default=0,
                   help="reset seed of the first simulated episode per epsilon (then seed + 1, ...) and of the "
                        "per-frame sampling noise")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--diversity", action="store_true",
                   help="also decode sampled next frames and report their mutual SSIM / PSNR per epsilon (Table 2)")
    p.add_argument("--diversity-samples", type=int, default=4, help="sampled next frames per context (default 4)")
    p.add_argument("--lpips-weights", metavar="FILE", help="LPIPS weights: adds LPIPS to the diversity table")
    p.add_argument("--video", action="store_true",
                   help="also write an MP4 per epsilon of one reset seed, episode_eps<E>_seed<S>.mp4: the frames "
                        "scaled up above the episode's reward curve, a cursor at the frame shown, the same-seed "
                        "expert's curve in grey (H.264, 10 frames/s)")
    p.add_argument("--video-seed", type=int, metavar="SEED",
                   help="reset seed of the --video episodes (default: the first expert episode's)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..report import ReportConfig, build_report

    check_output(args.out, {"--model": args.model, "--data": args.data, "--compare-model": args.compare_model,
                            "--lpips-weights": args.lpips_weights}, force=args.force)
    cfg = ReportConfig(model=args.model, task=args.task, out=args.out, episodes=args.episodes, data=args.data,
                       compare_model=args.compare_model, max_steps=args.max_steps, reward_types=args.reward_type,
                       seed=args.seed, device=args.device, **scoring_options(args, REPORT_OPTIONS),
                       diversity=args.diversity, diversity_samples=args.diversity_samples,
                       lpips_weights=args.lpips_weights, video=args.video, video_seed=args.video_seed,
                       progress=args.progress)
    m = build_report(cfg)

    def value(view: str, group: str) -> str:
        a = m[view]["auroc_expert_vs"].get(group)
        return "n/a" if a is None or a["value"] is None else f"{a['value']:.3f} [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]"

    rho = m["task_rows"]["spearman_epsilon"]["value"]
    print(f"wrote {args.out}/report.md ({m['reward_scale']} rewards): AUROC expert vs eps 1, task rows "
          f"{value('task_rows', '1.0')}, whole {value('whole', '1.0')}; vs frozen {value('task_rows', 'frozen-first-frame')}; "
          f"Spearman {'n/a' if rho is None else f'{rho:.3f}'}")
    for row in m.get("side_by_side", []):
        t = row["task_rows"]
        print(f"  {row['scorer']}: task rows AUROC vs eps 1 {_num(t['auroc_vs_eps1'])}, vs frozen "
              f"{_num(t['auroc_vs_frozen_worse'])}, Spearman {_num(t['spearman_epsilon'])}; whole "
              f"{_num(row['whole']['auroc_vs_eps1'])}")
    if m.get("videos"):
        print(f"  videos: {', '.join(m['videos'])}")
    for group, d in m.get("diversity", {}).items():
        print(f"  diversity {group}: SSIM {d['ssim']:.3f}, PSNR {d['psnr']:.2f} dB"
              + (f", LPIPS {d['lpips']:.3f}" if "lpips" in d else "") + f" over {d['contexts']} contexts")
    return 0


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
