#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian 12 / Python 3.11 machine (no GPU needed):
# system libraries for offscreen MuJoCo rendering (EGL / OSMesa) and pyrealsense2 (libusb), then a
# virtualenv at .venv with the CPU build of torch installed first and the pinned requirements.
# Safe to re-run: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libosmesa6 libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "[setup] apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# torch first: anything depending on torch would otherwise pull a CUDA build and gigabytes of wheels.
.venv/bin/python -c "import torch" 2>/dev/null || { echo "[setup] torch (CPU)"; "${PIP[@]}" torch==2.13.0; }
echo "[setup] pinned requirements"
"${PIP[@]}" -r requirements.txt
echo "[setup] diffusion-reward (editable)"
"${PIP[@]}" --no-build-isolation --no-deps -e .
echo "[setup] done: $(.venv/bin/diffusion-reward --version)"
