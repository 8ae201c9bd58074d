"""Reward scoring (entropy / likelihood chains; batch, chunked, streaming), statistics and the Eq. 5 combination."""
from .scorer import ChunkedScore, RewardScorer, ScoreConfig, ScoreResult, ScoreStream

__all__ = ["ChunkedScore", "RewardScorer", "ScoreConfig", "ScoreResult", "ScoreStream"]
