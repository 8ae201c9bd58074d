"""Live-mode latency over real DDS on loopback, between processes; prints tables.

1. Raw pub -> sub latency of `sensor_msgs/Image` (64x64 and 640x480 rgb8) at 30 Hz: a publisher process
   stamps each image with the wall clock just before `publish`, the subscriber (this process, best-effort
   sensor-data QoS, as the labeller) takes `now - stamp` in its callback.
2. End to end: a camera process publishes 640x480 rgb8 at --rate Hz (30; stamp = capture time), the labeller runs as
   `diffusion-reward live labeller` (live mode: newest-frame queue, drops when slower than the camera) with a
   random-weight model of each preset, and this process receives `~/reward`: latency = reward arrival -
   camera stamp; sustained rate = rewards per second after warm-up; the rest of the frames were skipped.
3. The breakdown: the labeller's median time per stage (queue wait, decode + resize, codec, chain, publish) from
   its /diagnostics, beside the end-to-end p50; the difference is transport and what no stage covers.

    .venv/bin/python bench/bench_live_latency.py                      # tiny + paper, 20 s each
    .venv/bin/python bench/bench_live_latency.py --presets tiny --seconds 10 --dtype bfloat16
    .venv/bin/python bench/bench_live_latency.py --presets tiny small --max-wait-ms 0 5   # the labeller's max_wait_s
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from diffusion_reward import msgs
from diffusion_reward.nodes.reward_labeller import STAGES
from diffusion_reward.transport.base import SENSOR_DATA_QOS
from diffusion_reward.transport.dds import DdsTransport

TASK = "button-press-v3"

# A camera in its own process: `frames` random rgb8 images cycled at `rate` Hz, stamped at publish time.
CAMERA = textwrap.dedent("""
    import sys, time, numpy as np
    from diffusion_reward import msgs
    from diffusion_reward.transport.dds import DdsTransport
    domain, topic, h, w, rate, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
        float(sys.argv[5]), float(sys.argv[6])
    t = DdsTransport("bench_camera", domain_id=domain, config="loopback")
    pub = t.create_publisher(msgs.Image, topic)
    while pub.subscription_count == 0:
        time.sleep(0.01)
    time.sleep(1.0)  # let the subscriber side finish matching too
    frames = [np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes() for i in range(8)]
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        ns = time.time_ns()
        pub.publish(msgs.Image(header=msgs.Header(msgs.Time.from_ns(ns), "camera_color_optical_frame"),
                               height=h, width=w, encoding="rgb8", step=3 * w, data=frames[n % len(frames)]))
        n += 1
        time.sleep(max(0.0, start + n / rate - time.monotonic()))
    print(n, flush=True)
    time.sleep(0.5)
    t.shutdown()
""")


def percentiles(values_s: list[float]) -> tuple[float, float]:
    if not values_s:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.asarray(values_s) * 1000, [50, 99])
    return float(p50), float(p99)


def start_camera(domain: int, topic: str, h: int, w: int, rate: float, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CAMERA, str(domain), topic, str(h), str(w), str(rate),
                             str(seconds)], stdout=subprocess.PIPE, text=True)


def raw_latency(domain: int, h: int, w: int, seconds: float) -> dict:
    node = DdsTransport("bench_listener", domain_id=domain, config="loopback")
    latencies = []
    node.create_subscription(msgs.Image, "/bench/raw",
                             lambda m: latencies.append((time.time_ns() - m.header.stamp.to_ns()) / 1e9),
                             SENSOR_DATA_QOS)
    cam = start_camera(domain, "/bench/raw", h, w, 30.0, seconds)
    node.spin_until(lambda: cam.poll() is not None, seconds + 60)
    node.spin_until(lambda: False, 0.3)
    sent = int(cam.stdout.read().strip() or 0)
    node.shutdown()
    p50, p99 = percentiles(latencies)
    return {"case": f"Image {w}x{h} pub->sub", "sent": sent, "received": len(latencies), "p50_ms": p50, "p99_ms": p99,
            "rate_hz": len(latencies) / seconds}


def end_to_end(domain: int, preset: str, dtype: str, seconds: float, warmup_s: float, workdir: Path,
               max_wait_s: float = 0.0, threads: int = 0, rate: float = 30.0) -> dict:
    from diffusion_reward.models import RewardModel

    model_path = workdir / f"{preset}.safetensors"
    model = RewardModel.from_preset(preset, seed=0)
    model.set_stats(TASK, "entropy", 9, 1, mean=0.0, std=1.0, source="bench: random weights")
    model.save(model_path)
    labeller = subprocess.Popen(
        [sys.executable, "-m", "diffusion_reward", "live", "labeller", "--network", "loopback",
         "--domain-id", str(domain), "--param", f"model_path:={model_path}", "--param", f"task:={TASK}",
         "--param", "image_topic:=/bench/camera", "--param", f"dtype:={dtype}",
         "--param", f"max_wait_s:={max_wait_s}", "--param", f"num_threads:={threads}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    node = DdsTransport("bench_listener", domain_id=domain, config="loopback")
    arrivals = []  # (arrival wall time s, latency s)
    node.create_subscription(msgs.Vector3Stamped, "/reward_labeller/reward",
                             lambda m: arrivals.append((time.time(), (time.time_ns() - m.header.stamp.to_ns()) / 1e9)))
    stages = {}  # the labeller's last /diagnostics: median ms per stage of a processed frame
    node.create_subscription(msgs.DiagnosticArray, "/diagnostics", lambda m: stages.update(
        {kv.key[:-len("_p50_ms")]: float(kv.value) for st in m.status if st.name.endswith(": reward")
         for kv in st.values if kv.key[:-len("_p50_ms")] in STAGES}))
    cam = start_camera(domain, "/bench/camera", 480, 640, rate, seconds + warmup_s)
    node.spin_until(lambda: cam.poll() is not None, seconds + warmup_s + 300)
    node.spin_until(lambda: False, 2.0)  # rewards still in flight
    sent = int(cam.stdout.read().strip() or 0)
    labeller.send_signal(2)
    _, err = labeller.communicate(timeout=60)
    node.shutdown()
    if not arrivals:
        raise SystemExit(f"no rewards from the {preset} labeller:\n{err[-2000:]}")
    t0 = arrivals[0][0] + warmup_s
    steady = [lat for t, lat in arrivals if t >= t0]
    p50, p99 = percentiles(steady)
    span = arrivals[-1][0] - t0
    wait = f", max_wait {max_wait_s * 1000:g} ms" if max_wait_s else ""
    return {"case": f"e2e 640x480@{rate:g}Hz {preset} ({dtype}, {threads or 'all'} thr{wait})",
            "sent": sent, "received": len(arrivals), "p50_ms": p50, "p99_ms": p99,
            "rate_hz": (len(steady) - 1) / span if span > 0 else float("nan"), "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per end-to-end case")
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of rewards ignored at the start")
    parser.add_argument("--domain-id", type=int, default=230)
    parser.add_argument("--max-wait-ms", type=float, nargs="+", default=[0.0],
                        help="the labeller's max_wait_s in ms, one end-to-end case per value (0 = off)")
    parser.add_argument("--threads", type=int, default=0, help="the labeller's num_threads (0: torch's default)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera frames per second")
    args = parser.parse_args()
    rows = [raw_latency(args.domain_id, h, w, args.raw_seconds) for h, w in ((64, 64), (480, 640))]
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for wait_ms in args.max_wait_ms:
                rows.append(end_to_end(args.domain_id, preset, args.dtype, args.seconds, args.warmup, Path(tmp),
                                       wait_ms / 1000, args.threads, args.rate))
    print(f"\n{'case':<52} {'sent':>6} {'received':>9} {'p50 ms':>8} {'p99 ms':>8} {'rate Hz':>8}")
    for r in rows:
        print(f"{r['case']:<52} {r['sent']:>6} {r['received']:>9} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
              f"{r['rate_hz']:>8.1f}")
    print("\nwhere a reward's time goes, median ms per processed frame (the labeller's /diagnostics; transport + "
          "rest = e2e p50 - their sum: camera publish -> labeller callback, and what the stages do not cover)")
    print(f"{'case':<52} " + " ".join(f"{s:>8}" for s in STAGES) + f" {'scorer':>8} {'e2e p50':>8} {'transport':>10}")
    for r in rows:
        if "stages" in r and all(s in r["stages"] for s in STAGES):
            st = r["stages"]
            print(f"{r['case']:<52} " + " ".join(f"{st[s]:>8.2f}" for s in STAGES) +
                  f" {st['encode'] + st['chain']:>8.2f} {r['p50_ms']:>8.2f} {r['p50_ms'] - sum(st.values()):>10.2f}")
    print(f"\n{os.cpu_count()} CPU cores; DDS on loopback (Cyclone DDS, rt/ topics, plain CDR); received = "
          f"rewards for e2e rows (the labeller drops frames it cannot keep up with).")


if __name__ == "__main__":
    main()
