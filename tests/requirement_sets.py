"""Does a pinned requirement set install for a Python version we cannot run here? The check pip's resolver makes
for `pip download --python-version X --only-binary=:all: --no-deps -r FILE`, without downloading gigabytes of
wheels: every pin must have a wheel on the index whose tags the target interpreter and platform accept and whose
Requires-Python admits it. Then, one step past `--no-deps`, every pinned package's own requirements (from the
wheel's core metadata, PEP 658), evaluated for the target, must accept the other pins of the set.

    problems = check_set("requirements-py3.10.txt", TARGETS["3.10"])   # [] when the set resolves

Index: PyPI's simple API (PEP 691 JSON), the one pip reads. Platform: x86_64 Linux with the target distro's glibc.
"""
from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import Parser
from functools import lru_cache
from pathlib import Path

from packaging import tags
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

INDEX = "https://pypi.org/simple"
ACCEPT = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Target:
    python: str  # "3.10"
    where: str  # the distribution that ships this Python
    glibc: tuple[int, int]

    @property
    def version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)

    def platforms(self) -> list[str]:
        manylinux = [f"manylinux_2_{m}_x86_64" for m in range(self.glibc[1], 4, -1)]
        return manylinux + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]

    def tags(self) -> frozenset[tags.Tag]:
        """Every wheel tag pip on this interpreter and platform accepts."""
        return _tags(self)

    def environment(self) -> dict[str, str]:
        return {"python_version": self.python, "python_full_version": f"{self.python}.0", "sys_platform": "linux",
                "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


@lru_cache(maxsize=None)
def _tags(target: Target) -> frozenset[tags.Tag]:
    platforms = target.platforms()
    interpreter = f"cp{target.version[0]}{target.version[1]}"
    return frozenset(tags.cpython_tags(target.version, platforms=platforms)) | frozenset(
        tags.compatible_tags(target.version, interpreter=interpreter, platforms=platforms))


TARGETS = {
    "3.10": Target("3.10", "Ubuntu 22.04, ROS 2 Humble", (2, 35)),
    "3.11": Target("3.11", "Debian 12 (this project's machines)", (2, 36)),
    "3.12": Target("3.12", "Ubuntu 24.04, ROS 2 Jazzy", (2, 39)),
}


class IndexUnreachable(Exception):
    pass


def read_pins(path: str | Path, target: Target) -> dict[str, Version]:
    """{canonical name: pinned version} of the lines that apply to `target` (markers evaluated); every line must
    be an exact `name==version` pin."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(target.environment()):
            continue
        [spec] = list(req.specifier)
        assert spec.operator == "==", f"{path}: {line!r} is not pinned with =="
        pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


@lru_cache(maxsize=None)
def index_files(name: str) -> tuple[dict, ...]:
    request = urllib.request.Request(f"{INDEX}/{name}/", headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return tuple(json.load(response)["files"])
    except OSError as exc:  # URLError, timeouts, refused connections
        raise IndexUnreachable(f"{INDEX}/{name}/: {exc}") from None


@lru_cache(maxsize=None)
def wheel_requirements(url: str, size: int) -> tuple[str, ...]:
    """Requires-Dist of the wheel at `url`: its core metadata file (PEP 658), or where the index has none, the
    wheel's METADATA read out of the zip with HTTP range requests (a few kB, as pip's lazy wheel does)."""
    try:
        try:
            with urllib.request.urlopen(url + ".metadata", timeout=30) as response:
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            with zipfile.ZipFile(_RangeFile(url, size)) as wheel:
                [member] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
                text = wheel.read(member).decode("utf-8", "replace")
    except OSError as exc:
        raise IndexUnreachable(f"{url}: {exc}") from None
    return tuple(Parser().parsestr(text).get_all("Requires-Dist") or ())


class _RangeFile(io.RawIOBase):
    """A remote file read with HTTP range requests, for zipfile (which reads the end, the directory, one member)."""

    def __init__(self, url: str, size: int):
        self.url, self.size, self.pos = url, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.pos)
        if count <= 0:
            return 0
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-{self.pos + count - 1}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        if response.status != 206 or len(data) != count:
            raise OSError(f"the server did not answer a range request ({response.status}, {len(data)} bytes)")
        buffer[:count] = data
        self.pos += count
        return count


def best_wheel(name: str, version: Version, target: Target) -> dict | None:
    """The index entry of a wheel of name==version that pip would accept for `target`, or None."""
    accepted = target.tags()
    python = Version(f"{target.python}.0")
    for entry in index_files(name):
        filename = entry["filename"]
        if not filename.endswith(".whl") or entry.get("yanked"):
            continue
        _, wheel_version, _, wheel_tags = parse_wheel_filename(filename)
        if wheel_version != version or not wheel_tags & accepted:
            continue
        requires = entry.get("requires-python")
        if requires and python not in SpecifierSet(requires):
            continue
        return entry
    return None


def check_set(path: str | Path, target: Target) -> list[str]:
    """The reasons `path` does not install on `target` ([] when every pin has a wheel and the pins agree)."""
    pins = read_pins(path, target)
    with ThreadPoolExecutor(8) as pool:
        wheels = dict(zip(pins, pool.map(lambda n: best_wheel(n, pins[n], target), pins)))
        problems = [f"{n}=={pins[n]}: no wheel for Python {target.python} on x86_64 Linux (glibc "
                    f"{target.glibc[0]}.{target.glibc[1]})" for n, w in wheels.items() if w is None]
        found = {n: w for n, w in wheels.items() if w is not None}
        requirements = dict(zip(found, pool.map(lambda n: wheel_requirements(found[n]["url"], found[n]["size"]),
                                                found)))
    env = target.environment()
    for name, lines in requirements.items():
        for line in lines:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            other = canonicalize_name(req.name)
            if other in pins and not req.specifier.contains(pins[other], prereleases=True):
                problems.append(f"{name}=={pins[name]} requires {req.name}{req.specifier}, the set pins "
                                f"{other}=={pins[other]}")
    return problems


def newest_with_wheel(name: str, target: Target, below: Version | None = None) -> Version | None:
    """The newest release of `name` (<= `below`) with a wheel for `target`: to choose pins for a new set."""
    versions = sorted({parse_wheel_filename(e["filename"])[1] for e in index_files(name)
                       if e["filename"].endswith(".whl")}, reverse=True)
    for version in versions:
        if version.is_prerelease or (below is not None and version > below):
            continue
        if best_wheel(name, version, target) is not None:
            return version
    return None
