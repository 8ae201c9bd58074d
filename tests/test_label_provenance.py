"""Label provenance (data/labels.py): one typed record for relabel and the live labeller / recorder."""
import pytest

from diffusion_reward.data.format import REWARD_ALIGNMENT
from diffusion_reward.data.labels import LabelProvenance, provenance_topic
from diffusion_reward.errors import UserError

PROVENANCE = LabelProvenance(model_hash="abc", task="button-press-v3", reward_type="likelihood", skip_step=9,
                             num_samples=1, noise=True, seed=3, stats_mean=-400.0, stats_std=20.0, dtype="bfloat16",
                             image_size=64, source="relabel", extra={"source_kind": "rosbag2"})


def test_stored_layout_is_format_md_and_reads_back():
    attrs = PROVENANCE.attrs()
    assert attrs["stats"] == {"mean": -400.0, "std": 20.0} and "stats_mean" not in attrs and "extra" not in attrs
    assert attrs["alignment"] == REWARD_ALIGNMENT and attrs["source_kind"] == "rosbag2" and attrs["software_version"]
    assert LabelProvenance.from_attrs(attrs) == PROVENANCE
    assert LabelProvenance.from_json(PROVENANCE.to_json()) == PROVENANCE


def test_files_written_with_two_statistics_attributes_still_read():
    legacy = {k: v for k, v in PROVENANCE.attrs().items() if k != "stats"} | {"stats_mean": -400.0, "stats_std": 20.0}
    assert LabelProvenance.from_attrs(legacy) == PROVENANCE


@pytest.mark.parametrize("drop,message", [("stats", "lacks stats"), ("model_hash", "lacks model_hash")])
def test_incomplete_or_malformed_provenance_is_one_clear_error(drop, message):
    with pytest.raises(UserError, match=message):
        LabelProvenance.from_attrs({k: v for k, v in PROVENANCE.attrs().items() if k != drop})
    with pytest.raises(UserError, match="not JSON"):
        LabelProvenance.from_json("{")
    with pytest.raises(UserError, match="not a JSON object"):
        LabelProvenance.from_json("[1]")


@pytest.mark.parametrize("stats", [[1, 2], {"mean": "x", "std": 1.0}, {"mean": 1.0}, "-1.5"])
def test_unreadable_statistics_are_one_clear_error_not_a_crash(stats):
    """What the recorder receives on a topic anyone can publish to: a UserError it logs, never another exception."""
    with pytest.raises(UserError, match="unreadable stats"):
        LabelProvenance.from_attrs(PROVENANCE.attrs() | {"stats": stats})


def test_provenance_travels_beside_the_reward_stream():
    assert provenance_topic("/reward_labeller/reward") == "/reward_labeller/reward_provenance"
    assert provenance_topic("~/reward") == "~/reward_provenance"
