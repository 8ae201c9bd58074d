"""Offline pipeline: relabelling sources, d3rlpy training, evaluation, export, conversion to other tools' files."""
