"""Plain CDR (XCDR1, little endian): the bytes ROS 2 puts on the wire and into rosbag2 files.

    data = serialize(Image(...))             # b"\\x00\\x01\\x00\\x00" + body, equal to rosbags' serialize_cdr
    msg = deserialize(data, Image)           # CdrError (a ValueError) on malformed input

Layout rules: a 4-byte encapsulation header (0x00 0x01 = CDR little endian, 2 option bytes), then the
fields in declaration order; every primitive is aligned to its own size counted from the end of the
header; strings are uint32 length (NUL included) + UTF-8 + NUL; unbounded sequences are a uint32 count
then the elements (no alignment padding when the sequence is empty); fixed arrays have no count; a
message without fields carries one uint8 (rosidl's `structure_needs_at_least_one_member`).

The wire schema of each message is its ROS `.msg` definition, written down once in `MSG_DEFS`; the
dataclasses of `diffusion_reward.msgs` hold the values. `uint8[]`/`byte[]` payloads go through as
bytes without per-element work, other numeric arrays as numpy arrays.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .. import msgs

CDR_LE_HEADER = b"\x00\x01\x00\x00"

# ROS type -> struct format; size = alignment for every CDR primitive.
PRIMITIVES = {
    "bool": "?", "byte": "B", "char": "B", "uint8": "B", "int8": "b", "uint16": "H", "int16": "h",
    "uint32": "I", "int32": "i", "uint64": "Q", "int64": "q", "float32": "f", "float64": "d",
}
_BYTE_TYPES = ("uint8", "byte", "char")  # arrays of these are carried as `bytes`

# The ROS 2 `.msg` definitions (Humble and Jazzy agree for all of these); constants are not on the wire.
MSG_DEFS = {
    "builtin_interfaces/msg/Time": "int32 sec\nuint32 nanosec",
    "builtin_interfaces/msg/Duration": "int32 sec\nuint32 nanosec",
    "std_msgs/msg/Header": "builtin_interfaces/msg/Time stamp\nstring frame_id",
    "sensor_msgs/msg/Image": "std_msgs/msg/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                             "uint8 is_bigendian\nuint32 step\nuint8[] data",
    "sensor_msgs/msg/CompressedImage": "std_msgs/msg/Header header\nstring format\nuint8[] data",
    "sensor_msgs/msg/RegionOfInterest": "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\n"
                                        "bool do_rectify",
    "sensor_msgs/msg/CameraInfo": "std_msgs/msg/Header header\nuint32 height\nuint32 width\n"
                                  "string distortion_model\nfloat64[] d\nfloat64[9] k\nfloat64[9] r\n"
                                  "float64[12] p\nuint32 binning_x\nuint32 binning_y\n"
                                  "sensor_msgs/msg/RegionOfInterest roi",
    "sensor_msgs/msg/JointState": "std_msgs/msg/Header header\nstring[] name\nfloat64[] position\n"
                                  "float64[] velocity\nfloat64[] effort",
    "geometry_msgs/msg/Vector3": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/msg/Vector3Stamped": "std_msgs/msg/Header header\ngeometry_msgs/msg/Vector3 vector",
    "geometry_msgs/msg/Twist": "geometry_msgs/msg/Vector3 linear\ngeometry_msgs/msg/Vector3 angular",
    "geometry_msgs/msg/TwistStamped": "std_msgs/msg/Header header\ngeometry_msgs/msg/Twist twist",
    "trajectory_msgs/msg/JointTrajectoryPoint": "float64[] positions\nfloat64[] velocities\n"
                                                "float64[] accelerations\nfloat64[] effort\n"
                                                "builtin_interfaces/msg/Duration time_from_start",
    "trajectory_msgs/msg/JointTrajectory": "std_msgs/msg/Header header\nstring[] joint_names\n"
                                           "trajectory_msgs/msg/JointTrajectoryPoint[] points",
    "std_msgs/msg/MultiArrayDimension": "string label\nuint32 size\nuint32 stride",
    "std_msgs/msg/MultiArrayLayout": "std_msgs/msg/MultiArrayDimension[] dim\nuint32 data_offset",
    "std_msgs/msg/Float64MultiArray": "std_msgs/msg/MultiArrayLayout layout\nfloat64[] data",
    "std_msgs/msg/Bool": "bool data",
    "std_msgs/msg/Empty": "",
    "std_msgs/msg/String": "string data",
    "diagnostic_msgs/msg/KeyValue": "string key\nstring value",
    "diagnostic_msgs/msg/DiagnosticStatus": "byte level\nstring name\nstring message\nstring hardware_id\n"
                                            "diagnostic_msgs/msg/KeyValue[] values",
    "diagnostic_msgs/msg/DiagnosticArray": "std_msgs/msg/Header header\n"
                                           "diagnostic_msgs/msg/DiagnosticStatus[] status",
    "rosgraph_msgs/msg/Clock": "builtin_interfaces/msg/Time clock",
}
EMPTY_MEMBER = "structure_needs_at_least_one_member"  # the uint8 rosidl adds to a message without fields


class CdrError(ValueError):
    """The bytes are not a valid plain-CDR encoding of the expected message."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a key of PRIMITIVES, "string", or a message type name
    length: int | None  # None: a single value; 0: unbounded sequence; N > 0: fixed array of N

    @property
    def is_primitive(self) -> bool:
        return self.type in PRIMITIVES


@lru_cache(maxsize=None)
def fields_of(msgtype: str) -> tuple[Field, ...]:
    """The wire fields of a ROS message type, parsed from `MSG_DEFS`."""
    if msgtype not in MSG_DEFS:
        raise CdrError(f"no CDR schema for message type {msgtype}")
    fields = []
    for line in MSG_DEFS[msgtype].splitlines():
        type_spec, name = line.split()
        base, _, rest = type_spec.partition("[")
        length = None if not _ else int(rest[:-1] or 0)
        fields.append(Field(name, base, length))
    return tuple(fields) or (Field(EMPTY_MEMBER, "uint8", None),)


def dds_type_name(msgtype: str) -> str:
    """ROS 2's DDS type name: `sensor_msgs/msg/Image` -> `sensor_msgs::msg::dds_::Image_`."""
    package, kind, name = msgtype.split("/")
    return f"{package}::{kind}::dds_::{name}_"


# -- encoding ------------------------------------------------------------------------------------

def serialize(msg: Any) -> bytes:
    """Encode a message dataclass (anything with `__msgtype__`) as CDR little endian, header included."""
    return bytes(encode(msg))


def encode(msg: Any) -> bytearray:
    """`serialize` into a growable buffer (no final copy: for senders that append padding)."""
    buf = bytearray(CDR_LE_HEADER)
    try:
        _write_struct(buf, msg, msg.__msgtype__)
    except (struct.error, TypeError, ValueError, AttributeError) as exc:
        raise CdrError(f"cannot encode {type(msg).__name__}: {exc}") from None
    return buf


def _align(buf: bytearray, size: int) -> None:
    pad = -(len(buf) - 4) % size
    if pad:
        buf += b"\x00" * pad


def _write_string(buf: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    _align(buf, 4)
    buf += struct.pack("<I", len(data) + 1)
    buf += data
    buf += b"\x00"


def _write_struct(buf: bytearray, msg: Any, msgtype: str) -> None:
    for f in fields_of(msgtype):
        value = getattr(msg, f.name, 0) if f.name == EMPTY_MEMBER else getattr(msg, f.name)
        if f.length is None:
            if f.is_primitive:
                fmt = PRIMITIVES[f.type]
                _align(buf, struct.calcsize(fmt))
                buf += struct.pack("<" + fmt, value)
            elif f.type == "string":
                _write_string(buf, value)
            else:
                _write_struct(buf, value, f.type)
            continue
        if f.type in _BYTE_TYPES:
            value = memoryview(value).cast("B") if isinstance(value, (bytes, bytearray, memoryview)) else \
                np.ascontiguousarray(value, dtype=np.uint8).reshape(-1)
        elif f.is_primitive:
            value = np.ascontiguousarray(value, dtype="<" + PRIMITIVES[f.type]).reshape(-1)
        count = len(value)
        if f.length:
            if count != f.length:
                raise ValueError(f"field '{f.name}' needs exactly {f.length} elements, got {count}")
        else:
            _align(buf, 4)
            buf += struct.pack("<I", count)
        if not count:
            continue
        if f.is_primitive:
            _align(buf, value.itemsize)
            buf += value.data if isinstance(value, np.ndarray) else value
        elif f.type == "string":
            for item in value:
                _write_string(buf, item)
        else:
            for item in value:
                _write_struct(buf, item, f.type)


# -- decoding ------------------------------------------------------------------------------------

def deserialize(data: bytes | bytearray | memoryview, msg_class: type) -> Any:
    """Decode CDR bytes (header included; trailing padding ignored) into an instance of `msg_class`."""
    view = memoryview(data).cast("B")
    if len(view) < 4 or bytes(view[:2]) != CDR_LE_HEADER[:2]:
        raise CdrError(f"not plain CDR little endian (header {bytes(view[:4]).hex() or 'missing'})")
    try:
        msg, _ = _read_struct(view, 4, msg_class, msg_class.__msgtype__)
    except (struct.error, ValueError, TypeError, UnicodeDecodeError, IndexError) as exc:
        raise CdrError(f"malformed {msg_class.__msgtype__}: {exc}") from None
    return msg


def _aligned(pos: int, size: int) -> int:
    return pos + (-(pos - 4) % size)


def _read_string(view: memoryview, pos: int) -> tuple[str, int]:
    pos = _aligned(pos, 4)
    (size,) = struct.unpack_from("<I", view, pos)
    pos += 4
    if size == 0 or pos + size > len(view) or view[pos + size - 1] != 0:
        raise ValueError(f"bad string of length {size} at byte {pos}")
    return str(view[pos:pos + size - 1], "utf-8"), pos + size


def _read_struct(view: memoryview, pos: int, cls: type, msgtype: str) -> tuple[Any, int]:
    values = {}
    for f in fields_of(msgtype):
        if f.length is None:
            if f.is_primitive:
                fmt = PRIMITIVES[f.type]
                pos = _aligned(pos, struct.calcsize(fmt))
                (value,) = struct.unpack_from("<" + fmt, view, pos)
                pos += struct.calcsize(fmt)
            elif f.type == "string":
                value, pos = _read_string(view, pos)
            else:
                value, pos = _read_struct(view, pos, msgs.BY_TYPE_NAME[f.type], f.type)
            values[f.name] = value
            continue
        count = f.length
        if not count:
            pos = _aligned(pos, 4)
            (count,) = struct.unpack_from("<I", view, pos)
            pos += 4
        if f.is_primitive:
            itemsize = struct.calcsize(PRIMITIVES[f.type])
            if count:
                pos = _aligned(pos, itemsize)
            end = pos + count * itemsize
            if end > len(view):
                raise ValueError(f"field '{f.name}' claims {count} elements beyond the end of the data")
            if f.type in _BYTE_TYPES:
                value = bytes(view[pos:end])
            else:
                value = np.frombuffer(view, dtype="<" + PRIMITIVES[f.type], count=count, offset=pos).copy()
            pos = end
        elif f.type == "string":
            value = []
            for _ in range(count):
                item, pos = _read_string(view, pos)
                value.append(item)
        else:
            if count > len(view) - pos:  # every element takes at least one byte
                raise ValueError(f"field '{f.name}' claims {count} elements beyond the end of the data")
            item_class = msgs.BY_TYPE_NAME[f.type]
            value = []
            for _ in range(count):
                item, pos = _read_struct(view, pos, item_class, f.type)
                value.append(item)
        values[f.name] = value
    values.pop(EMPTY_MEMBER, None)
    return cls(**values), pos
