#!/usr/bin/env bash
# A separate virtualenv with robomimic 0.3.0 (.venv-robomimic) for the `robomimic` test tier, which trains
# robomimic's own BC and IQL on a file written by `diffusion-reward convert --to robomimic`. Never touches .venv.
# Safe to re-run: skipped when the venv already imports robomimic.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-robomimic
PY=${PYTHON:-python3}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import robomimic, torchvision" 2>/dev/null; then
    echo "[setup-robomimic] $VENV already set up"; exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
echo "[setup-robomimic] pinned requirements (torch + torchvision, robomimic's dependencies)"
"${PIP[@]}" -r requirements-robomimic.txt
echo "[setup-robomimic] robomimic==0.3.0 (--no-deps: see requirements-robomimic.txt)"
"${PIP[@]}" --no-deps robomimic==0.3.0
"$VENV/bin/python" -c "import robomimic, robomimic.algo.iql, torchvision; print('[setup-robomimic] done: robomimic', robomimic.__version__)"
