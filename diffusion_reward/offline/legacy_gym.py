"""Imported first by every module here that imports d3rlpy: d3rlpy 2.8 still imports the legacy `gym`, which
prints a multi-line "Gym has been unmaintained" notice to stderr on import; it is swallowed once, here. Modules
that need torch only (`policy_folder`, `export`'s loader) do not import this, so a robot without gym runs them."""
import contextlib
import io

with contextlib.redirect_stderr(io.StringIO()):
    import gym  # noqa: F401
