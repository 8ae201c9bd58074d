"""Damaged and hostile input files for the bad-input tests: each one is real, and damaged the way files are in
practice (a chunk that no longer decompresses, an edited header, a truncated recording, a binary file given
where text is expected)."""
import json
import os
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np

from diffusion_reward.data import DatasetWriter


def model_with_metadata(src: Path, dst: Path, edit) -> Path:
    """A copy of the model file `src` whose safetensors metadata went through `edit(metadata)`. Loading stops at
    the metadata, so the copy keeps only the header (the weights would only make every check slower)."""
    blob = src.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    metadata = json.loads(blob[8:8 + n])["__metadata__"]
    edit(metadata)
    header = json.dumps({"__metadata__": metadata}).encode()
    header += b" " * (-len(header) % 8)
    dst.write_bytes(struct.pack("<Q", len(header)) + header)
    return dst


def set_config(section: str, key: str, value):
    def edit(metadata):
        config = json.loads(metadata["config"])
        config[section][key] = value
        metadata["config"] = json.dumps(config)
    return edit


def change_stats(change):
    def edit(metadata):
        stats = json.loads(metadata["stats"])
        for entry in stats.values():
            change(entry)
        metadata["stats"] = json.dumps(stats)
    return edit


def set_metadata(key: str, value: str):
    return lambda metadata: metadata.update({key: value})


def compressible_dataset(path: Path, task: str) -> Path:
    """Two successful 6-step episodes whose frames compress (lzf), so a damaged chunk fails to decompress."""
    with DatasetWriter(path, env_args={"task": task, "image_size": 64, "action_repeat": 2}) as writer:
        for e in range(2):
            rng = np.random.default_rng(e)
            writer.write_episode(obs={"image": np.full((6, 64, 64, 3), 7 * e, np.uint8),
                                      "state": rng.normal(size=(6, 39)).astype(np.float32)},
                                 actions=rng.uniform(-1, 1, (6, 4)).astype(np.float32), success=True)
    return path


def damage_last_chunk(data: Path, episode: str = "demo_1", key: str = "obs/image") -> None:
    """Overwrite the last compressed chunk of `key` in one episode file with garbage (bit rot, a bad disk)."""
    episode_file = Path(f"{data}.episodes") / f"{episode}.h5"
    with h5py.File(episode_file, "r") as f:
        stream = f[key]
        chunks = [stream.id.get_chunk_info(i) for i in range(stream.id.get_num_chunks())]
    chunk = [c for c in chunks if c.filter_mask == 0][-1]  # filter_mask 0: stored compressed
    with open(episode_file, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)


def empty_first_episode(data: Path) -> None:
    """Cut the first (successful) episode to zero steps, as a hand edit or a broken tool would."""
    with h5py.File(Path(f"{data}.episodes") / "demo_0.h5", "r+") as f:
        f.visititems(lambda _, item: item.resize(0, axis=0) if isinstance(item, h5py.Dataset) else None)
        f.attrs["num_samples"] = 0


def bags(root: Path) -> tuple[Path, Path, Path]:
    """(a 12-frame rosbag2 recording with mcap storage, a copy with a zeroed stretch inside a chunk, a bare .mcap
    cut to a third)."""
    from rosbags.rosbag2 import StoragePlugin
    from rosbags.typesys import Stores, get_typestore
    from test_sources_rosbag import bag_messages, make_frames, write_bag

    store = get_typestore(Stores.ROS2_HUMBLE)
    bag = write_bag(root / "bag", bag_messages(store, make_frames(height=64, width=64)), store,
                    storage=StoragePlugin.MCAP)
    damaged = root / "damaged_bag"
    shutil.copytree(bag, damaged)
    [storage] = damaged.glob("*.mcap")
    data = bytearray(storage.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)
    storage.write_bytes(bytes(data))
    truncated = root / "truncated.mcap"
    truncated.write_bytes(bytes(data[:len(data) // 3]))
    return bag, damaged, truncated


def damaged_policy(policy: Path, dst: Path, file: str, content: bytes) -> Path:
    """A copy of a trained policy folder with `file` (policy.json, params.json, ...) replaced by `content`."""
    shutil.copytree(policy, dst, symlinks=True)
    (dst / file).write_bytes(content)
    return dst


def unwritable_folder(root: Path) -> Path:
    """A folder this user cannot create files in: a read-only folder, or for root (who may write into any
    folder) /sys, where the kernel lets nobody create files."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = root / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder
