"""Side-by-side summary of several `bench_reward_quality.py` runs: the paper's 2 x 2 (Fig. 11a: diffusion vs
VideoGPT model, likelihood vs entropy reward) or any set of rewards scored on the same evaluation episodes.

Each --run is LABEL=WORK/DOMAIN-TYPE, a folder of per-task score JSONs that bench_reward_quality.py wrote
(WORK/scores/metaworld-likelihood/...). Per run, over the seen and the unseen tasks it has: mean AUROC(expert vs
epsilon 1) on the task rows (with the worst task) and on whole episodes, mean Spearman(epsilon, reward) on the
task rows, and the worst AUROC against the two frozen-robot controls (task rows and whole episodes).

    python bench/compare_reward_runs.py \\
        --run "Diffusion Reward, likelihood=runs/mt3/scores/metaworld-likelihood" \\
        --run "Diffusion Reward, entropy=runs/dre/scores/metaworld-entropy" \\
        --run "VIPER (VideoGPT likelihood)=runs/vg50/scores/metaworld-likelihood" \\
        --run "VIPER, entropy=runs/vg50/scores/metaworld-entropy"
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reward_quality import DOMAINS  # noqa: E402  (the seen / unseen task lists)

CONTROLS = ("zero-action", "frozen-first-frame")


def summarise(results: list[dict]) -> dict:
    def auroc(r, view, against):
        return r[view]["auroc_expert_vs"][against]["value"]

    rows = [auroc(r, "task_rows", "1.0") for r in results]
    worst = min(results, key=lambda r: auroc(r, "task_rows", "1.0"))
    frozen = {view: min((min(auroc(r, view, c) for c in CONTROLS), r["name"]) for r in results)
              for view in ("task_rows", "whole")}
    return {"tasks": len(results), "rows": sum(rows) / len(rows), "worst": (auroc(worst, "task_rows", "1.0"),
                                                                            worst["name"]),
            "whole": sum(auroc(r, "whole", "1.0") for r in results) / len(results),
            "spearman": sum(r["task_rows"]["spearman_epsilon"]["value"] for r in results) / len(results),
            "frozen_rows": frozen["task_rows"], "frozen_whole": frozen["whole"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", required=True, metavar="LABEL=SCORES_DIR")
    p.add_argument("--domain", default="metaworld", choices=sorted(DOMAINS))
    args = p.parse_args()
    seen = DOMAINS[args.domain]["train"].split(",")
    unseen = [t for t in DOMAINS[args.domain]["unseen"].split(",") if t]
    header = ("| reward | seen: AUROC vs epsilon 1, task rows (worst) | whole episodes | Spearman(epsilon) | "
              "vs frozen robot, worst: task rows / whole | unseen: task rows | whole | vs frozen, worst |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for run in args.run:
        label, _, folder = run.partition("=")
        results = {r["name"]: r for r in (json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json")))}
        cells = [label]
        s = summarise([results[t] for t in seen if t in results]) if any(t in results for t in seen) else None
        u = summarise([results[t] for t in unseen if t in results]) if any(t in results for t in unseen) else None
        if s:
            n = "" if s["tasks"] == len(seen) else f" ({s['tasks']} of {len(seen)} tasks)"
            cells += [f"{s['rows']:.2f} ({s['worst'][0]:.2f} {s['worst'][1].removesuffix('-v3')}){n}",
                      f"{s['whole']:.2f}", f"{s['spearman']:.2f}",
                      f"{s['frozen_rows'][0]:.2f} ({s['frozen_rows'][1].removesuffix('-v3')}) / "
                      f"{s['frozen_whole'][0]:.2f} ({s['frozen_whole'][1].removesuffix('-v3')})"]
        else:
            cells += ["not scored"] * 4
        if u:
            n = "" if u["tasks"] == len(unseen) else f" ({u['tasks']} of {len(unseen)} tasks)"
            cells += [f"{u['rows']:.2f}{n}", f"{u['whole']:.2f}", f"{u['frozen_rows'][0]:.2f}"]
        else:
            cells += ["not scored"] * 3
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
