"""Episode datasets: crash-safe writer, lazy reader (robomimic layout; see FORMAT.md)."""
from .format import FORMAT_VERSION
from .reader import Dataset, Episode
from .writer import DatasetWriter, EpisodeStream

__all__ = ["Dataset", "DatasetWriter", "Episode", "EpisodeStream", "FORMAT_VERSION"]
