"""The scoring options, written once: what a user chooses when a reward model turns frames into rewards.

`ScoreConfig` holds them with their defaults, help texts and checks. Everything that scores takes them from here:
the CLI flags of `score`, `relabel`, `stats` and `report` are generated from its fields (`add_scoring_arguments`,
`scoring_options`), and the config dataclasses that carry some of them (`RelabelConfig`, `ReportConfig`, the
labeller node's parameters) declare those fields with `option_field`, so a default or a help text changes in one
place. Torch-free, so parsers and ROS parameter declarations import it without loading a model.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

from .checks import check_int, check_seed, config_field
from .precision import DTYPES
from .reward_types import REWARD_TYPE_CHOICES, REWARD_TYPE_HELP


@dataclass
class ScoreConfig:
    reward_type: str = config_field("auto", REWARD_TYPE_HELP, choices=REWARD_TYPE_CHOICES)
    skip_step: int = config_field(
        9, "reverse-chain stride of the denoiser (9: t = 99, 89, ..., 0, 11 network evaluations)")
    num_samples: int = config_field(1, "sampling chains averaged per frame")
    noise: bool = config_field(
        True, "Gumbel sampling noise in the reverse chain (false: the argmax chain, the authors' noise: false; parity "
              "checks)", flag="--no-noise",
        flag_help="argmax chain instead of Gumbel sampling (the authors' noise: false; parity checks)")
    seed: int = config_field(0, "seed of the per-frame sampling noise (the same seed gives the same rewards)")
    task: str | None = None
    standardize: bool = True  # needs the model's statistics for (task, type, skip, samples)
    chunk_size: int = config_field(64, "rows per network batch (bounds memory, does not change the rewards)")
    dtype: str = config_field("float32", "network precision (auto: bfloat16 where the hardware has native bf16; the "
                                         "diffusion math stays float32)", choices=DTYPES)
    likelihood_compat: bool = config_field(False, "likelihood mode with the authors' context layout (scored frame "
                                                  "inside its own condition)")
    resize: bool = config_field(False, "center-crop frames to a square and resize them to the model's input size")

    def __post_init__(self):
        check_options(dataclasses.asdict(self))


LOWEST = {"skip_step": 0, "num_samples": 1, "chunk_size": 1}  # the smallest value of each integer option


def check_options(values: dict, label=None) -> None:
    """The checks of the scoring options in `values` ({option: value}), written once for ScoreConfig and for the
    configs that carry options (the labeller's parameters); `label(option)` names one in a message (default: the
    field, `skip_step`, which the CLI shows as its flag)."""
    label = label or str
    for name, value in values.items():
        if name in LOWEST:
            check_int(label(name), value, LOWEST[name])
        elif name == "seed":
            check_seed(label(name), value)


# which options each command offers: relabel all of SCORING_FLAGS; score also likelihood_compat and resize; stats
# those its statistics are keyed by, the seed and resize (any recording kind); report the chain's settings (its --seed also seeds resets and
# its --reward-type takes several types, so both are its own flags)
SCORING_FLAGS = ("reward_type", "skip_step", "num_samples", "noise", "seed", "chunk_size", "dtype")
SCORE_OPTIONS = SCORING_FLAGS + ("likelihood_compat", "resize")
STATS_OPTIONS = ("reward_type", "skip_step", "num_samples", "seed", "resize")
REPORT_OPTIONS = ("skip_step", "num_samples")
_FIELDS = {f.name: f for f in dataclasses.fields(ScoreConfig)}


def option_field(name: str):
    """A dataclass field with ScoreConfig's default, help and flag settings for option `name` (for configs that
    carry it)."""
    f = _FIELDS[name]
    return field(default=f.default, metadata=f.metadata)


def flag_name(name: str) -> str:
    return _FIELDS[name].metadata.get("flag", "--" + name.replace("_", "-"))


def add_scoring_arguments(parser: argparse.ArgumentParser, names=SCORING_FLAGS) -> None:
    """Argparse flags for ScoreConfig options `names`: `--skip-step` ..., a boolean as its switch (`--no-noise`)."""
    for name in names:
        f = _FIELDS[name]
        if isinstance(f.default, bool):
            parser.add_argument(flag_name(name), dest=name, action="store_false" if f.default else "store_true",
                                help=f.metadata.get("flag_help", f.metadata["help"]))
        else:
            parser.add_argument(flag_name(name), dest=name, type=type(f.default), default=f.default,
                                choices=f.metadata.get("choices"), help=f.metadata["help"])


def scoring_options(source, names=SCORING_FLAGS) -> dict:
    """{option: value} of options `names` read from `source`: parsed flags (`add_scoring_arguments`) or a config
    that carries them (`option_field`); ScoreConfig(**scoring_options(...)) checks them."""
    return {name: getattr(source, name) for name in names}
