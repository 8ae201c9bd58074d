"""Label provenance, written once: the attributes of `reward_labels/<name>` (FORMAT.md) that say how a reward label
was made, so a reader can trust, reproduce or refuse it.

Every producer builds a `LabelProvenance`: `relabel` from its options, the live labeller from its parameters. The
labeller sends it beside its reward stream, as JSON on the latched topic `provenance_topic(<reward topic>)`, and the
recorder stores what it receives. The dataset stores `attrs()`; `from_attrs()` reads it back, including files
written before this class existed, whose statistics were two attributes (`stats_mean`, `stats_std`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .. import __version__
from ..errors import UserError
from .format import REWARD_ALIGNMENT


@dataclass(frozen=True)
class LabelProvenance:
    model_hash: str          # weights hash of the reward model file
    task: str                # whose standardisation statistics were used
    reward_type: str         # entropy / likelihood ("auto" resolved)
    skip_step: int
    num_samples: int
    noise: bool
    seed: int
    stats_mean: float        # standardised reward = (raw - stats_mean) / stats_std
    stats_std: float
    dtype: str               # network precision the rewards were computed in ("auto" resolved)
    image_size: int          # the model's input size
    source: str              # the producer: "relabel", "ros2"
    model_path: str = ""
    alignment: str = REWARD_ALIGNMENT
    software_version: str = __version__
    extra: dict = field(default_factory=dict)  # the producer's own: source path and options, topic, crop, ...

    def attrs(self) -> dict:
        """The stored attributes: every field flat, the statistics as `stats` = {"mean", "std"}, `extra` merged."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("stats_mean", "stats_std", "extra")}
        return {**flat, "stats": {"mean": self.stats_mean, "std": self.stats_std}, **self.extra}

    @classmethod
    def from_attrs(cls, attrs: dict) -> "LabelProvenance":
        """Back from stored attributes; UserError naming what is missing or unreadable."""
        attrs = dict(attrs)
        stats = attrs.pop("stats", None)
        if stats is None and "stats_mean" in attrs:  # written before the one `stats` object
            stats = {"mean": attrs.pop("stats_mean"), "std": attrs.pop("stats_std", None)}
        fields = [f for f in dataclasses.fields(cls) if f.name not in ("stats_mean", "stats_std", "extra")]
        missing = [f.name for f in fields if f.name not in attrs and f.default is dataclasses.MISSING]
        if missing or stats is None:
            raise UserError(f"reward label provenance lacks {', '.join(missing + ([] if stats else ['stats']))}")
        try:
            mean, std = float(stats["mean"]), float(stats["std"])
        except (TypeError, KeyError, ValueError):
            raise UserError(f"reward label provenance has unreadable stats {stats!r} (want {{mean, std}})") from None
        known = {f.name: attrs.pop(f.name) for f in fields if f.name in attrs}
        return cls(**known, stats_mean=mean, stats_std=std, extra=attrs)

    def to_json(self) -> str:
        return json.dumps(self.attrs())

    @classmethod
    def from_json(cls, text: str) -> "LabelProvenance":
        try:
            attrs = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"reward label provenance is not JSON ({exc})") from None
        if not isinstance(attrs, dict):
            raise UserError("reward label provenance is not a JSON object")
        return cls.from_attrs(attrs)


def provenance_topic(reward_topic: str) -> str:
    """Where a reward stream's provenance is published (latched, std_msgs/String JSON): beside the stream."""
    return reward_topic.rstrip("/") + "_provenance"
