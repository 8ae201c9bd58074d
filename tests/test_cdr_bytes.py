"""Byte-level proof: our CDR == rosbags' CDR (Humble and Jazzy typestores) for every message type."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from diffusion_reward import msgs
from diffusion_reward.transport import cdr

STORES = {"humble": get_typestore(Stores.ROS2_HUMBLE), "jazzy": get_typestore(Stores.ROS2_JAZZY)}
TYPE_NAMES = [m.__msgtype__ for m in msgs.ALL_MESSAGES]
_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "int32": np.int32, "uint32": np.uint32}


def make_message(msgtype: str, rng: np.random.Generator, size: int):
    """A message whose strings, sequences and payloads have lengths chosen to exercise every alignment."""
    values = {}
    for f in cdr.fields_of(msgtype):
        if f.name == cdr.EMPTY_MEMBER:
            continue
        n = f.length if f.length else int(rng.integers(0, size + 1))

        def one():
            if f.type == "string":
                return "".join(rng.choice(list("abcdefgxyz_/")) for _ in range(int(rng.integers(0, 2 * size + 2))))
            if f.type == "bool":
                return bool(rng.integers(0, 2))
            if f.type in ("uint8", "byte", "char"):
                return int(rng.integers(0, 128))  # rosbags packs `byte` as signed; the wire byte is the same
            if f.type in ("int32",):
                return int(rng.integers(-2**31, 2**31))
            if f.type in ("uint32",):
                return int(rng.integers(0, 2**32))
            if f.type.startswith("float"):
                return float(rng.normal())
            return make_message(f.type, rng, size)

        if f.length is None:
            values[f.name] = one()
        elif f.type in ("uint8", "byte", "char"):
            values[f.name] = rng.integers(0, 256, size=2 * n + 1 if f.length == 0 and n else n, dtype=np.uint8).tobytes()
        elif f.type in _NUMPY_DTYPES:
            values[f.name] = rng.normal(size=n).astype(_NUMPY_DTYPES[f.type])
        else:
            values[f.name] = [one() for _ in range(n)]
    return msgs.BY_TYPE_NAME[msgtype](**values)


def to_rosbags(msg, typestore):
    """Convert our dataclass to the typestore's class of the same name, field by field."""
    cls = typestore.types[msg.__msgtype__]
    kwargs = {}
    for name in cls.__dataclass_fields__:
        if name == "__msgtype__":
            continue
        if name == cdr.EMPTY_MEMBER:
            kwargs[name] = 0
            continue
        value = getattr(msg, name)
        if isinstance(value, bytes):
            value = np.frombuffer(value, np.uint8)
        elif isinstance(value, list):
            value = [to_rosbags(v, typestore) if hasattr(v, "__msgtype__") else v for v in value]
        elif hasattr(value, "__msgtype__"):
            value = to_rosbags(value, typestore)
        kwargs[name] = value
    return cls(**kwargs)


def as_tree(msg):
    """Nested plain values for equality checks (numpy arrays -> lists, dataclasses -> dicts)."""
    if dataclasses.is_dataclass(msg):
        return {"__type__": msg.__msgtype__, **{f.name: as_tree(getattr(msg, f.name)) for f in dataclasses.fields(msg)}}
    if isinstance(msg, np.ndarray):
        return [str(msg.dtype), msg.tolist()]
    if isinstance(msg, (list, tuple)):
        return [as_tree(v) for v in msg]
    return msg


def cases():
    for msgtype in TYPE_NAMES:
        for seed, size in ((0, 0), (1, 1), (2, 3), (3, 5)):
            yield pytest.param(msgtype, seed, size, id=f"{msgtype.split('/')[-1]}-{seed}")


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("msgtype", TYPE_NAMES)
def test_schema_matches_ros_definitions(store, msgtype):
    typestore = STORES[store]
    _, ros_fields = typestore.fielddefs[msgtype]
    ours = cdr.fields_of(msgtype)
    assert [f.name for f in ours] == [name for name, _ in ros_fields]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("msgtype,seed,size", list(cases()))
def test_bytes_equal_rosbags_and_decode_back(store, msgtype, seed, size):
    typestore = STORES[store]
    msg = make_message(msgtype, np.random.default_rng(seed), size)
    ours = cdr.serialize(msg)
    theirs = bytes(typestore.serialize_cdr(to_rosbags(msg, typestore), msgtype))
    assert ours == theirs
    decoded = cdr.deserialize(theirs, type(msg))
    assert as_tree(decoded) == as_tree(msg)
    # DDS pads samples to a multiple of 4 bytes: trailing padding must be ignored
    assert as_tree(cdr.deserialize(theirs + b"\x00" * (-len(theirs) % 4), type(msg))) == as_tree(msg)


def test_default_messages_equal_rosbags():
    for msg_class in msgs.ALL_MESSAGES:
        msg = msg_class()
        for typestore in STORES.values():
            theirs = bytes(typestore.serialize_cdr(to_rosbags(msg, typestore), msg.__msgtype__))
            assert cdr.serialize(msg) == theirs, msg.__msgtype__


def test_image_payload_round_trip_is_exact():
    frame = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    msg = msgs.Image(header=msgs.Header(msgs.Time(5, 7), "cam"), height=480, width=640, encoding="rgb8",
                     step=640 * 3, data=frame.tobytes())
    data = cdr.serialize(msg)
    # header, stamp, frame_id, height+width, encoding, is_bigendian + pad, step, count, payload
    assert len(data) == 4 + 8 + 8 + 8 + 9 + 1 + 2 + 4 + 4 + frame.nbytes
    back = cdr.deserialize(data, msgs.Image)
    assert isinstance(back.data, bytes)
    np.testing.assert_array_equal(np.frombuffer(back.data, np.uint8).reshape(480, 640, 3), frame)
    # numpy payloads encode like bytes
    assert cdr.serialize(dataclasses.replace(msg, data=frame)) == data


def test_type_names_follow_ros2_dds_mapping():
    assert cdr.dds_type_name("sensor_msgs/msg/Image") == "sensor_msgs::msg::dds_::Image_"
    assert cdr.dds_type_name("rosgraph_msgs/msg/Clock") == "rosgraph_msgs::msg::dds_::Clock_"


@pytest.mark.parametrize("bad", [
    b"",
    b"\x00\x00\x00\x00" + b"\x00" * 16,             # big endian header: not what ROS 2 sends
    cdr.CDR_LE_HEADER + b"\x01\x00",                  # truncated
    cdr.CDR_LE_HEADER + b"\x00" * 8 + b"\xff\xff\xff\x7f",  # string length beyond the end
    cdr.CDR_LE_HEADER + b"\x00" * 8 + b"\x02\x00\x00\x00\xff\x00",  # invalid UTF-8
    cdr.CDR_LE_HEADER + b"\x00" * 8 + b"\x02\x00\x00\x00ab",  # string without NUL
])
def test_malformed_input_raises_cdr_error(bad):
    with pytest.raises(cdr.CdrError):
        cdr.deserialize(bad, msgs.Header)


def test_sequence_count_beyond_data_raises():
    data = cdr.serialize(msgs.JointState(name=["a"], position=np.ones(2)))
    with pytest.raises(cdr.CdrError):
        cdr.deserialize(data[:-4], msgs.JointState)


def test_fixed_array_length_is_checked():
    with pytest.raises(cdr.CdrError, match="exactly 9"):
        cdr.serialize(msgs.CameraInfo(k=np.zeros(8)))
