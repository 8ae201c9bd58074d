"""Episode data: the one in-memory `Episode`, the crash-safe dataset writer and lazy reader (robomimic layout;
see FORMAT.md), the readers of every recording kind (`sources`), stamp synchronisation (`sync`), the frames the
model sees (`frames`) and video files (`video`)."""
from .episode import Episode
from .format import FORMAT_VERSION
from .reader import Dataset, StoredEpisode
from .writer import DatasetWriter, EpisodeStream

__all__ = ["Dataset", "DatasetWriter", "Episode", "EpisodeStream", "FORMAT_VERSION", "StoredEpisode"]
