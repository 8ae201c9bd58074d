"""The labeller in its own process on real DDS (loopback), driven frame by frame from this process:
rewards come back with the source image stamps and equal offline scoring of the same frames."""
import os
import subprocess
import sys
import time

import numpy as np

from diffusion_reward.models import RewardModel
from diffusion_reward.msgs import Empty, Image, Vector3Stamped
from diffusion_reward.data.frames import rgb_to_image
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.data.frames import resize_frames
from diffusion_reward.transport import DEFAULT_QOS, SENSOR_DATA_QOS
from diffusion_reward.transport.dds import DdsTransport

DOMAIN = 150 + os.getpid() % 50
TASK, SKIP = "button-press-v3", 49


def test_cross_process_rewards_equal_offline_scoring(tmp_path, tiny_model_file):
    model_path = tiny_model_file(TASK, SKIP)
    node = subprocess.Popen(
        [sys.executable, "-m", "diffusion_reward", "live", "labeller", "--network", "loopback",
         "--domain-id", str(DOMAIN), "--param", f"model_path:={model_path}", "--param", f"task:={TASK}",
         "--param", f"skip_step:={SKIP}", "--param", "synchronous:=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    probe = DdsTransport("probe", domain_id=DOMAIN, config="loopback")
    try:
        rewards: dict[int, Vector3Stamped] = {}
        probe.create_subscription(Vector3Stamped, "/reward_labeller/reward",
                                  lambda m: rewards.__setitem__(m.header.stamp.to_ns(), m))
        images = probe.create_publisher(Image, "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
        episode_start = probe.create_publisher(Empty, "/episode/start", DEFAULT_QOS)

        def score(frame, stamp_ns, timeout_s, resend_s):
            """Send a frame and wait for its reward; resend after `resend_s` (warm-up: discovery, loading)."""
            deadline = time.monotonic() + timeout_s
            while stamp_ns not in rewards:
                assert node.poll() is None, node.stdout.read()
                assert time.monotonic() < deadline, "no reward came back"
                images.publish(rgb_to_image(frame, stamp_ns, "camera_color_optical_frame"))
                probe.spin_until(lambda: stamp_ns in rewards, timeout_s=resend_s)
            return rewards[stamp_ns]

        frames = np.random.default_rng(0).integers(0, 256, size=(4, 48, 64, 3), dtype=np.uint8)
        score(frames[0], 1, timeout_s=120, resend_s=1.0)
        episode_start.publish(Empty())  # reliable: the labeller restarts its context before the next frame
        probe.spin_until(lambda: False, timeout_s=0.5)
        # one frame at a time, each sent once: a resend would be scored as a frame of its own
        got = [score(f, 10**9 * (i + 1), timeout_s=60, resend_s=60) for i, f in enumerate(frames)]
    finally:
        probe.shutdown()
        node.terminate()
        node.wait(30)
    offline = RewardScorer(RewardModel.load(model_path), ScoreConfig(skip_step=SKIP, task=TASK, seed=0))
    expected = offline.score_episode(resize_frames(frames, 64))
    assert [r.header.frame_id for r in got] == ["camera_color_optical_frame"] * 4
    np.testing.assert_allclose([r.vector.y for r in got], expected.raw, rtol=1e-5)
    np.testing.assert_allclose([r.vector.x for r in got], expected.reward, rtol=1e-4, atol=1e-5)




def test_synchronous_replay_scores_every_frame_in_order_and_counts_what_it_cannot_hold(tiny_model_file, capsys):
    """A replay bursts 39 frames at a synchronous labeller still busy with frame 0 (held on an event, not a
    timer). With `replay_queue_size` 100 every frame is scored, in order. With 10, the reader cache (32) holds
    the first 32 of the burst and rejects 7, the queue keeps the newest 10: 11 scored, and the other 29 are
    counted as `lost_in_transport` in /diagnostics; none vanishes silently."""
    import threading

    from diffusion_reward.msgs import DiagnosticArray
    from diffusion_reward.nodes.reward_labeller import RewardLabellerNode
    from diffusion_reward.transport import QoS

    model_path = tiny_model_file(TASK, 9)
    frames = np.random.default_rng(0).integers(0, 256, size=(40, 48, 64, 3), dtype=np.uint8)
    for queue, scored, rejected in ((100, 40, 0), (10, 11, 7)):
        name, topic = f"labeller_queue_{queue}", f"/replay_{queue}/image"  # one domain, topics of their own
        node_t = DdsTransport(name, domain_id=DOMAIN, config="loopback", params={
            "model_path": model_path, "task": TASK, "synchronous": True, "replay_queue_size": queue,
            "image_topic": topic, "diagnostics_period_s": 0.2})
        node = RewardLabellerNode(node_t)
        release, process = threading.Event(), node._process
        node._process = lambda *args: (release.wait(120), process(*args))[1]
        threading.Thread(target=node_t.spin, daemon=True).start()
        probe = DdsTransport("probe", domain_id=DOMAIN, config="loopback")
        rewards, diagnostics = [], []
        try:
            probe.create_subscription(Vector3Stamped, f"/{name}/reward",
                                      lambda m: rewards.append(m.header.stamp.to_ns()), QoS(True, 100))
            probe.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda d: diagnostics.append(d) if d.status[0].name.startswith(name) else None)
            images = probe.create_publisher(Image, topic, SENSOR_DATA_QOS)
            deadline = time.monotonic() + 120  # generous: only a hang reaches it
            images.publish(rgb_to_image(frames[0], 10**9, "cam"))
            while node.received == 0:  # frame 0 is in the callback, held there until `release`
                assert time.monotonic() < deadline, "frame 0 never reached the labeller"
                if images.subscription_count == 0:  # not matched yet: that copy went nowhere, send it again
                    images.publish(rgb_to_image(frames[0], 10**9, "cam"))
                time.sleep(0.01)
            for i, frame in enumerate(frames[1:], start=2):
                images.publish(rgb_to_image(frame, 10**9 * i, "cam"))
            while node.image_subscription.lost < rejected:
                assert time.monotonic() < deadline, "the burst never filled the reader cache"
                time.sleep(0.01)
            release.set()

            def reported():
                last = {kv.key: kv.value for d in diagnostics[-1:] for kv in d.status[0].values}
                return last.get("processed") == str(scored)

            assert probe.spin_until(lambda: len(rewards) >= scored and reported(), timeout_s=120)
            sub = node.image_subscription  # the node's transport warns about losses on its own schedule
            assert probe.spin_until(lambda: sub.missed_reported == sub.dropped + sub.lost, timeout_s=120)
        finally:
            probe.shutdown()
            node_t.shutdown()
            node.close()
        assert rewards == sorted(rewards) and len(rewards) == scored, (queue, len(rewards))
        values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        assert values["lost_in_transport"] == str(40 - scored) and values["received"] == str(scored)
        err = capsys.readouterr().err  # the losses are warned about once, by the transport, not again by the node
        assert (f"[{name}]: dropped" in err and f"message(s) on {topic}" in err) == (rejected > 0), err
        assert "never reached the labeller" not in err
