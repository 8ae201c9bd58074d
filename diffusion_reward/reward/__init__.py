"""Reward scoring (entropy / likelihood chains; batch, chunked, streaming), statistics and the Eq. 5 combination."""
from .scorer import RewardScorer, ScoreConfig, ScoreResult, ScoreStream

__all__ = ["RewardScorer", "ScoreConfig", "ScoreResult", "ScoreStream"]
