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

A second table is the analogue of the paper's Fig. 2: the return (mean reward per row over whole episodes, raw,
before standardisation) of expert videos of the training tasks (in distribution), of expert videos of the unseen
tasks (out of distribution), and of suboptimal videos (25 % random actions, epsilon 0.25) of both; each also on
one scale shared by every reward, where 1 is the training tasks' expert return and 0 their epsilon-1 (random
actions) return, so rewards in different units (nats per token, per frame, entropies) compare. A reward that
generalises gives unseen experts a return near 1, and suboptimal videos less than experts.
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
    print()
    fig2(args.run, seen, unseen)
    return 0


def returns(results: list[dict], group: str) -> float:
    """Mean over tasks of the mean raw reward per row of the group's whole episodes."""
    return sum(r["whole"]["per_group"][group]["mean"] for r in results) / len(results)


def fig2(runs: list[str], seen: list[str], unseen: list[str]) -> None:
    """The analogue of the paper's Fig. 2 (see the module docstring)."""
    header = ("| reward | seen expert | seen epsilon 0.25 | seen epsilon 1 | unseen expert | unseen epsilon 0.25 | "
              "on the shared scale: seen epsilon 0.25 / unseen expert / unseen epsilon 0.25 |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for run in runs:
        label, _, folder = run.partition("=")
        results = {r["name"]: r for r in (json.loads(f.read_text()) for f in sorted(Path(folder).glob("*.json")))}
        s, u = [results[t] for t in seen if t in results], [results[t] for t in unseen if t in results]
        if not s or not u:
            print(f"| {label} | needs seen and unseen tasks |" + " |" * 5)
            continue
        expert, random = returns(s, "0.0"), returns(s, "1.0")

        def scaled(value: float) -> str:
            return f"{(value - random) / (expert - random):.2f}"

        cells = [label] + [f"{v:.1f}" for v in (expert, returns(s, "0.25"), random, returns(u, "0.0"),
                                                 returns(u, "0.25"))]
        cells.append(" / ".join(scaled(v) for v in (returns(s, "0.25"), returns(u, "0.0"), returns(u, "0.25"))))
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
