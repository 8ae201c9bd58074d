"""Live mode without ROS: pipeline nodes as processes on the ROS 2 DDS graph (`diffusion-reward live`).

    run_node("labeller", params_files=["config/reward_labeller.yaml"], overrides={"task": "button-press-v3"})
    LaunchSet.from_file("live.yaml").run()       # `live up`: several nodes, one process each

`live up` reads a small YAML file listing what a launch file would start:

    domain_id: 0                 # optional: ROS_DOMAIN_ID, else 0
    network: loopback            # optional: loopback | default | <interface name>
    nodes:
      - node: sim-bridge         # labeller | recorder | policy | sim-bridge | camera
        name: sim_bridge         # optional ROS node name (default: the node's registry name)
        params: [../ros2_ws/src/diffusion_reward_ros/config/sim_bridge.yaml]   # relative to this file
        param: {episodes: 2}     # overrides, last word (as `--param name:=value`)
        required: true           # when it exits, stop the others (launch's on_exit=Shutdown)
        after: [reward_labeller, episode_recorder]   # start once these nodes are up (subscribed, spinning)

Each node runs in its own process with its output prefixed by its name. Ctrl-C / SIGTERM sends SIGINT to
every node; a node stops spinning, closes (the recorder saves its open episode durably) and leaves the
graph; nodes still running after `stop_timeout_s` get SIGTERM, then SIGKILL.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

# CLI name -> registry name in `diffusion_reward.nodes.NODES` (also the default ROS node name)
NODE_ALIASES = {
    "labeller": "reward_labeller",
    "recorder": "episode_recorder",
    "policy": "policy_runner",
    "sim-bridge": "sim_bridge",
    "camera": "camera",
}
READY_LINE = "ready"  # what a node prints on stdout when it is constructed and starts spinning


def parse_param(text: str) -> tuple[str, Any]:
    """`name:=value` with a YAML value, as `ros2 run ... -p name:=value` reads it."""
    name, sep, value = text.partition(":=")
    if not sep or not name.strip():
        raise UserError(f"--param needs the form name:=value, got '{text}'")
    try:
        return name.strip(), yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--param {name}: value '{value}' is not valid YAML") from None


def dds_config(network: str | None, dds_config_file: str | None = None) -> str | None:
    """The `DdsTransport(config=...)` for `--network` / `--dds-config`."""
    from .transport.dds import interface_config

    if dds_config_file:
        if network not in (None, "default"):
            raise UserError("use either --network or --dds-config, not both")
        return dds_config_file
    if network in (None, "default"):
        return None  # CYCLONEDDS_URI if set, else Cyclone DDS defaults (multicast), as ROS 2 does
    return "loopback" if network == "loopback" else interface_config(network)


def node_parameters(node_name: str, params_files: list[str], overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameters from ROS 2 parameter files (in order), then overrides."""
    from .nodes.params import load_parameter_file

    merged: dict[str, Any] = {}
    for path in params_files:
        merged.update(load_parameter_file(path, node_name))
    merged.update(overrides)
    return merged


def run_node(node: str, params_files: list[str] = (), overrides: dict[str, Any] | None = None,
             name: str | None = None, domain_id: int | None = None, config: str | None = None,
             log_level: str = "info") -> int:
    """Run one node on DDS until SIGINT/SIGTERM; close it cleanly. UserError for bad parameters."""
    from .nodes import node_class
    from .transport.dds import DdsTransport

    if node not in NODE_ALIASES:
        raise UserError(f"unknown node '{node}': choose one of {', '.join(NODE_ALIASES)}")
    key = NODE_ALIASES[node]
    name = name or key
    params = node_parameters(name, list(params_files), dict(overrides or {}))
    transport = DdsTransport(name, params=params, domain_id=domain_id, config=config, log_level=log_level)
    stop_requested = threading.Event()

    def on_signal(signum, _frame):
        if stop_requested.is_set():  # a second Ctrl-C: stop closing cleanly, quit now
            raise KeyboardInterrupt
        stop_requested.set()
        transport.log("info", f"{signal.Signals(signum).name}: shutting down (again to quit without closing)")
        transport.interrupt()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    instance = None
    try:
        instance = node_class(key)(transport)  # declares and validates parameters: UserError on bad ones
        for unknown in transport.undeclared_overrides():
            transport.log("warn", f"parameter '{unknown}' is not declared by {name}: ignored")
        if not stop_requested.is_set():
            print(READY_LINE, flush=True)  # on stdout, whatever the log level: `live up` starts `after` nodes
            transport.spin()
    finally:
        try:
            if instance is not None and hasattr(instance, "close"):
                instance.close()
        finally:
            transport.shutdown()
            for s, handler in previous.items():
                signal.signal(s, handler)
    return 0


# -- live up ------------------------------------------------------------------------------------------

@dataclass
class NodeSpec:
    node: str
    name: str
    params: list[str] = field(default_factory=list)
    param: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    after: list[str] = field(default_factory=list)  # names of nodes that must be ready first

    def command(self, domain_id: int | None, network: str | None, log_level: str) -> list[str]:
        cmd = [sys.executable, "-m", "diffusion_reward", "live", self.node, "--name", self.name,
               "--log-level", log_level]
        for path in self.params:
            cmd += ["--params", path]
        for key, value in self.param.items():
            cmd += ["--param", f"{key}:={json.dumps(value)}"]  # JSON is YAML: types survive the trip
        if domain_id is not None:
            cmd += ["--domain-id", str(domain_id)]
        if network is not None:
            cmd += ["--network", network]
        return cmd


@dataclass
class LaunchSet:
    nodes: list[NodeSpec]
    domain_id: int | None = None
    network: str | None = None
    log_level: str = "info"
    stop_timeout_s: float = 15.0

    @classmethod
    def from_file(cls, path: str | os.PathLike, domain_id: int | None = None, network: str | None = None,
                  log_level: str = "info") -> "LaunchSet":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"live config not found: {path}")
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:  # UnicodeDecodeError: a binary file
            raise UserError(f"live config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list) or not doc["nodes"]:
            raise UserError(f"live config {path} needs a non-empty 'nodes' list")
        unknown = set(doc) - {"nodes", "domain_id", "network", "stop_timeout_s"}
        if unknown:
            raise UserError(f"live config {path}: unknown key(s) {', '.join(sorted(unknown))}")
        specs, names = [], set()
        for i, entry in enumerate(doc["nodes"]):
            if not isinstance(entry, dict) or entry.get("node") not in NODE_ALIASES:
                raise UserError(f"live config {path}: nodes[{i}] needs 'node: <{'|'.join(NODE_ALIASES)}>'")
            extra = set(entry) - {"node", "name", "params", "param", "required", "after"}
            if extra:
                raise UserError(f"live config {path}: nodes[{i}] has unknown key(s) {', '.join(sorted(extra))}")
            params = entry.get("params") or []
            params = [params] if isinstance(params, str) else params
            resolved = [str((path.parent / p).resolve()) for p in params]
            for p in resolved:
                if not Path(p).is_file():
                    raise UserError(f"live config {path}: parameter file not found: {p}")
            if not isinstance(entry.get("param", {}), dict):
                raise UserError(f"live config {path}: nodes[{i}].param must be a map of name: value")
            name = entry.get("name") or NODE_ALIASES[entry["node"]]
            if name in names:
                raise UserError(f"live config {path}: two nodes are named '{name}'; give one a 'name'")
            names.add(name)
            after = entry.get("after") or []
            after = [after] if isinstance(after, str) else after
            specs.append(NodeSpec(entry["node"], name, resolved, dict(entry.get("param") or {}),
                                  bool(entry.get("required", False)), [str(a) for a in after]))
        after = {spec.name: spec.after for spec in specs}
        for spec in specs:
            unknown_after = [a for a in spec.after if a not in names or a == spec.name]
            if unknown_after:
                raise UserError(f"live config {path}: {spec.name} is after {', '.join(unknown_after)}, which is not "
                                f"another node of this file")
            seen, todo = set(), list(spec.after)
            while todo:
                name = todo.pop()
                if name == spec.name:
                    raise UserError(f"live config {path}: the 'after' lists form a cycle through {spec.name}")
                if name not in seen:
                    seen.add(name)
                    todo += after[name]
        return cls(specs,
                   domain_id=domain_id if domain_id is not None else doc.get("domain_id"),
                   network=network if network is not None else doc.get("network"),
                   log_level=log_level, stop_timeout_s=float(doc.get("stop_timeout_s", 15.0)))

    def run(self) -> int:
        """Start the nodes (each once the nodes it is `after` are ready), relay their output, stop them all on
        SIGINT/SIGTERM or when a required one exits; return 0 when every node ended cleanly, else the first
        failing exit code."""
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        ready = {spec.name: threading.Event() for spec in self.nodes}
        procs: dict[str, subprocess.Popen | None] = {}  # None: never started (a node it is after failed)
        relays: list[threading.Thread] = []
        reported: set[str] = set()

        def failed_before_ready(name: str) -> bool:
            return name in procs and not ready[name].is_set() and (procs[name] is None or procs[name].poll() is not None)

        try:
            while not stop.is_set():
                for spec in self.nodes:
                    if spec.name in procs:
                        continue
                    blocker = next((a for a in spec.after if failed_before_ready(a)), None)
                    if blocker is not None:
                        _say(f"not starting {spec.name}: {blocker} ended before it was ready")
                        procs[spec.name] = None
                    elif all(ready[a].is_set() for a in spec.after):
                        procs[spec.name] = self._start(spec, ready[spec.name], relays)
                for spec in self.nodes:
                    proc = procs.get(spec.name)
                    if proc is not None and proc.poll() is not None and spec.name not in reported:
                        reported.add(spec.name)
                        _say(f"{spec.name} exited with code {proc.returncode}")
                        if spec.required:
                            _say(f"{spec.name} is required: stopping the others")
                            stop.set()
                if len(procs) == len(self.nodes) and all(p is None or p.poll() is not None for p in procs.values()):
                    break
                stop.wait(0.1)
            self._stop_all(procs)
            for name, proc in procs.items():
                if proc is not None and name not in reported:
                    _say(f"{name} exited with code {proc.returncode}")
        finally:
            self._stop_all(procs)
            for relay in relays:
                relay.join(timeout=2)
            for s, handler in previous.items():
                signal.signal(s, handler)
        codes = [p.returncode for p in procs.values() if p is not None]
        return next((c for c in codes if c not in (0, None)), 0)

    def _start(self, spec: NodeSpec, ready: threading.Event, relays: list[threading.Thread]) -> subprocess.Popen:
        proc = subprocess.Popen(spec.command(self.domain_id, self.network, self.log_level),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True,  # only we send them signals, once
                                preexec_fn=_die_with_parent)
        relay = threading.Thread(target=_relay, args=(spec.name, proc, ready), daemon=True)
        relay.start()
        relays.append(relay)
        _say(f"started {spec.name} (pid {proc.pid})")
        return proc

    def _stop_all(self, procs: dict[str, subprocess.Popen | None]) -> None:
        for sig, timeout in ((signal.SIGINT, self.stop_timeout_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            running = {name: p for name, p in procs.items() if p is not None and p.poll() is None}
            if not running:
                return
            for name, p in running.items():
                if sig != signal.SIGINT:
                    _say(f"{name} did not stop: sending {sig.name}")
                p.send_signal(sig)
            deadline = time.monotonic() + timeout
            for p in running.values():
                try:
                    p.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass


def _relay(name: str, proc: subprocess.Popen, ready: threading.Event) -> None:
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line == READY_LINE:
            ready.set()
        sys.stdout.write(f"[{name}] {line}\n")
        sys.stdout.flush()
    proc.stdout.close()


def _say(message: str) -> None:
    sys.stdout.write(f"[live] {message}\n")
    sys.stdout.flush()


def _die_with_parent() -> None:
    """Linux: a node gets SIGTERM if `live up` itself is killed (no orphaned nodes holding the camera)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
