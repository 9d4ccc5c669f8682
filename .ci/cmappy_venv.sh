#!/usr/bin/env bash
# A small venv with cmapPy for the GCTX interoperability test (tests/tasks/test_pipeline.py::test_cmappy_reads_predicted_gctx): cmapPy
# 4.0.1 needs numpy<2 and pandas<3, which the project's environment does not have, so the test
# runs cmapPy in a subprocess with this venv's python. Reused when already built.
# Usage: .ci/cmappy_venv.sh [DIR]   (default: $TFNET_JAX_CMAPPY_VENV or ~/.cache/tfnet_jax/cmappy-venv)
# Prints the venv's python path on stdout.
set -euo pipefail
VENV=${1:-${TFNET_JAX_CMAPPY_VENV:-$HOME/.cache/tfnet_jax/cmappy-venv}}
PY="$VENV/bin/python"
if ! "$PY" -c "import cmapPy.pandasGEXpress.parse" >/dev/null 2>&1; then
    rm -rf "$VENV"
    python -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check "cmapPy==4.0.1" "numpy<2" "pandas<3" h5py >&2
    "$PY" -c "import cmapPy.pandasGEXpress.parse" >&2
fi
echo "$PY"
