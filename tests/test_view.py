"""`diffusion-reward view`: the MCAP read back with the `mcap` reader, decoded only with the schemas stored in the file
(as Foxglove does), and checked topic by topic against the dataset."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.msg import get_types_from_msg
from test_policy_data import write_dataset
from test_relabel_cli import tree_hash

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset

STEPS, EPISODES = 9, 3


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("view") / "labelled.hdf5", episodes=EPISODES, steps=STEPS,
                         labels=("likelihood", "entropy_skip4"))


def read_mcap(path):
    """(header profile, {topic: (schema name, schema encoding, message encoding)}, message counts from the summary,
    {topic: [(log_ns, decoded message)]}) using a typestore that knows only the file's own schemas."""
    typestore = get_typestore(Stores.EMPTY)
    with open(path, "rb") as f:
        reader = make_reader(f)
        header, summary = reader.get_header(), reader.get_summary()
        channels = {c.topic: (summary.schemas[c.schema_id].name, summary.schemas[c.schema_id].encoding,
                              c.message_encoding) for c in summary.channels.values()}
        counts = {summary.channels[cid].topic: n for cid, n in summary.statistics.channel_message_counts.items()}
        for schema in summary.schemas.values():
            typestore.register(get_types_from_msg(schema.data.decode(), schema.name))
        messages = {}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            msg = typestore.deserialize_cdr(message.data, schema.name)
            messages.setdefault(channel.topic, []).append((message.log_time, msg))
    return header.profile, channels, counts, messages


def test_view_writes_every_step_on_standard_topics(tmp_path, capsys, labelled):
    before = tree_hash(labelled)
    out = tmp_path / "labelled.mcap"
    rc = main(["view", str(labelled), "--reward", "likelihood", "--alpha", "0.5", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert tree_hash(labelled) == before and f"{EPISODES} episode(s), {EPISODES * STEPS} steps" in stdout
    profile, channels, counts, messages = read_mcap(out)
    assert profile == "ros2"
    total = EPISODES * STEPS
    assert counts == {"/camera/image": total, "/reward_labels/likelihood": total, "/reward_labels/entropy_skip4": total,
                      "/reward/eq5": total, "/reward/sparse": total, "/obs/state": total, "/action": total,
                      "/episode": EPISODES}
    assert channels["/camera/image"] == ("sensor_msgs/msg/Image", "ros2msg", "cdr")
    assert channels["/reward_labels/likelihood"] == ("geometry_msgs/msg/Vector3Stamped", "ros2msg", "cdr")
    assert channels["/reward/eq5"][0] == "std_msgs/msg/Float64"
    assert channels["/obs/state"][0] == "std_msgs/msg/Float32MultiArray"
    assert {t: len(m) for t, m in messages.items()} == counts
    times = [ns for ns, _ in messages["/reward/eq5"]]
    assert np.all(np.diff(times) > 0)  # episodes one after another, never on top of each other
    with Dataset(labelled) as ds:
        for e, name in enumerate(ds.episode_names):
            rows = slice(e * STEPS, (e + 1) * STEPS)
            with ds.episode(name) as ep:
                episode = json.loads(messages["/episode"][e][1].data)
                assert episode == {"episode": name, "success": ep.success, "steps": STEPS}
                assert messages["/episode"][e][0] == times[e * STEPS]
                images = [m for _, m in messages["/camera/image"][rows]]
                assert all(m.encoding == "rgb8" and (m.height, m.width, m.step) == (64, 64, 192) for m in images)
                np.testing.assert_array_equal(np.stack([m.data.reshape(64, 64, 3) for m in images]), ep.obs["image"])
                label = ep.reward_labels["likelihood"]["datasets"]
                vectors = [m.vector for _, m in messages["/reward_labels/likelihood"][rows]]
                np.testing.assert_allclose([v.x for v in vectors], label["reward"], rtol=1e-6)
                np.testing.assert_allclose([v.y for v in vectors], label["raw"], rtol=1e-6)
                eq5 = [m.data for _, m in messages["/reward/eq5"][rows]]
                np.testing.assert_allclose(eq5, 0.5 * label["reward"] + ep.rewards, rtol=1e-6)
                np.testing.assert_allclose([m.data for _, m in messages["/reward/sparse"][rows]], ep.rewards)
                np.testing.assert_allclose(np.stack([m.data for _, m in messages["/obs/state"][rows]]), ep.obs["state"])
                np.testing.assert_allclose(np.stack([m.data for _, m in messages["/action"][rows]]), ep.actions)
                stamp = images[0].header.stamp
                assert stamp.sec * 10**9 + stamp.nanosec == times[e * STEPS]  # header stamp = log time


def test_view_of_chosen_episodes_and_bad_input(tmp_path, capsys, labelled):
    out = tmp_path / "two.mcap"
    assert main(["view", str(labelled), "--episodes", "demo_2,demo_0", "--reward", "sparse", "--out", str(out)]) == 0
    capsys.readouterr()
    _, _, counts, messages = read_mcap(out)
    assert counts["/camera/image"] == 2 * STEPS and "/reward/eq5" not in counts
    assert [json.loads(m.data)["episode"] for _, m in messages["/episode"]] == ["demo_2", "demo_0"]
    rc = main(["view", str(labelled), "--episodes", "demo_9", "--out", str(tmp_path / "bad.mcap")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and "has no episode demo_9" in err
    rc = main(["view", str(labelled), "--out", str(out)])
    assert rc == 2 and "already exists; pass --force" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.mcap"]  # nothing half-written left behind


FOXGLOVE = Path(__file__).resolve().parent / "foxglove"


def test_foxglove_own_decoders_show_every_message(tmp_path, capsys, labelled):
    """The MCAP through the libraries Foxglove reads MCAP and ROS 2 messages with (@mcap/core, @foxglove/rosmsg,
    @foxglove/rosmsg2-serialization; tests/foxglove/read_mcap.mjs): every message decodes with the file's schema,
    with no byte left over. Needs node and `npm ci --prefix tests/foxglove` (.ci/run does it)."""
    node = shutil.which("node")
    if node is None or not (FOXGLOVE / "node_modules").is_dir():
        reason = "needs node and `npm ci --prefix tests/foxglove`"
        if os.environ.get("DIFFUSION_REWARD_REQUIRE_FOXGLOVE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path / "labelled.mcap"
    assert main(["view", str(labelled), "--reward", "likelihood", "--alpha", "0.5", "--out", str(out)]) == 0
    capsys.readouterr()
    proc = subprocess.run([node, str(FOXGLOVE / "read_mcap.mjs"), str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = json.loads(proc.stdout)
    assert shown["profile"] == "ros2"
    _, _, counts, _ = read_mcap(out)
    assert {topic: t["count"] for topic, t in shown["topics"].items()} == counts
    topics = shown["topics"]
    assert topics["/camera/image"]["schema"] == "sensor_msgs/msg/Image"
    with Dataset(labelled) as ds, ds[0] as ep:
        width, height, step, encoding, size, first, stamped = topics["/camera/image"]["values"][0]
        assert (width, height, step, encoding, size, stamped) == (64, 64, 192, "rgb8", 64 * 64 * 3, True)
        assert first == ep.obs["image"][0].reshape(-1)[:6].tolist()
        label = ep.reward_labels["likelihood"]["datasets"]
        np.testing.assert_allclose(topics["/reward/eq5"]["values"][:STEPS], 0.5 * label["reward"] + ep.rewards,
                                   rtol=1e-6)
        np.testing.assert_allclose([v[0] for v in topics["/reward_labels/likelihood"]["values"][:STEPS]],
                                   label["reward"], rtol=1e-6)
        np.testing.assert_allclose(topics["/obs/state"]["values"][0], ep.obs["state"][0], rtol=1e-6)
    assert json.loads(topics["/episode"]["values"][0])["episode"] == "demo_0"


def _layout_paths(layout: dict) -> set[str]:
    """Every topic or message path the panels of a Foxglove layout read, after checking its panel tree."""
    def leaves(node):
        return [node] if isinstance(node, str) else leaves(node["first"]) + leaves(node["second"])
    assert sorted(leaves(layout["layout"])) == sorted(layout["configById"])
    paths = set()
    for panel_id, config in layout["configById"].items():
        kind = panel_id.split("!")[0]
        paths |= ({config["imageMode"]["imageTopic"]} if kind == "Image" else
                  {p["value"] for p in config["paths"]} if kind == "Plot" else {config["topicPath"]})
    return paths


def test_foxglove_layouts_read_the_topics_we_write(tmp_path, labelled):
    """docs/foxglove: view.layout.json reads topics and fields `view` writes; live.layout.json the camera topic the
    labeller subscribes to and the fields of its reward topic."""
    from diffusion_reward.nodes.reward_labeller import RewardLabellerParams

    docs = Path(__file__).resolve().parents[1] / "docs" / "foxglove"
    out = tmp_path / "v.mcap"
    assert main(["view", str(labelled), "--reward", "likelihood", "--out", str(out)]) == 0
    _, channels, _, messages = read_mcap(out)
    for path in _layout_paths(json.loads((docs / "view.layout.json").read_text())):
        topic, _, field = path.partition(".")
        assert topic in channels, path
        assert not field or hasattr(messages[topic][0][1], field), path
    live = _layout_paths(json.loads((docs / "live.layout.json").read_text()))
    assert live == {RewardLabellerParams.image_topic, "/reward_labeller/reward.vector.x",
                    "/reward_labeller/reward.vector.y", "/reward_labeller/reward.vector.z"}
