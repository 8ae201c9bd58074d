"""Offline pipeline: relabelling sources, d3rlpy training, evaluation, export."""
import contextlib
import io

# d3rlpy 2.8 still imports the legacy `gym`, which prints a multi-line "Gym has been unmaintained" notice to
# stderr on import; every d3rlpy user of this package comes through here, so the notice is swallowed once.
with contextlib.redirect_stderr(io.StringIO()):
    import gym  # noqa: F401
