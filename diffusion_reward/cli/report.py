"""`diffusion-reward report`: reward QA report (metrics.json, report.md, PNG plots)."""
from __future__ import annotations

import argparse

from ..outputs import check_output
from .config_args import add_config_arguments, config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..report import ReportConfig

    add_config_arguments(p, ReportConfig)
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from ..report import ReportConfig, build_report

    check_output(args.out, {"--model": args.model, "--data": args.data, "--compare-model": args.compare_model,
                            "--lpips-weights": args.lpips_weights}, force=args.force)
    cfg = config_from_args(ReportConfig, args)
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
