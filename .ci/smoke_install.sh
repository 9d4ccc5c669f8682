#!/usr/bin/env bash
# Non-editable install check: build a wheel from a clean copy of the working tree, install it
# (no deps: they are already in the environment) into a venv that sees the system
# site-packages, then from a directory outside the repository train a tiny model of each family
# through its console script and require metrics.json.
set -euo pipefail
cd "$(dirname "$0")/.."
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SECONDS=0

# Tracked and untracked-but-not-ignored files only: a stale build/ or egg-info must not leak
# into the wheel.
mkdir -p "$TMP/src"
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$TMP/src"
python -m pip wheel --quiet --disable-pip-version-check --no-deps "$TMP/src" -w "$TMP/wheel"
python -m venv --system-site-packages "$TMP/venv"
"$TMP/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$TMP"/wheel/*.whl

mkdir -p "$TMP/work" && cd "$TMP/work"
# The system site-packages may hold an editable install: the wheel's copy must be the one used.
"$TMP/venv/bin/python" -c "
import sys, tfnet_jax, tfnet_jax.cli as cli
assert tfnet_jax.__file__.startswith(sys.prefix), tfnet_jax.__file__
assert cli.CONFIG_DIR.startswith(sys.prefix), cli.CONFIG_DIR
from tfnet_jax.graph import cpu_kernel
assert cpu_kernel.SOURCE.is_file(), cpu_kernel.SOURCE  # the fused GAT kernel's source ships
import os  # configs/ subfolders ship too: the launcher presets (hydra/launcher=slurm ...)
assert os.path.isfile(os.path.join(cli.CONFIG_DIR, 'hydra', 'launcher', 'slurm.yaml')), cli.CONFIG_DIR
print('installed:', tfnet_jax.__file__)"

smoke() {  # NAME OVERRIDES...: one tiny training run, which must write metrics.json
    local name=$1; shift
    local start=$SECONDS
    if ! "$TMP/venv/bin/tfnet-train" "$@" hydra.run.dir="$TMP/work/$name" > "$TMP/$name.log" 2>&1 \
            || [[ ! -s "$TMP/work/$name/metrics.json" ]]; then
        tail -n 40 "$TMP/$name.log"
        echo "smoke_install: tfnet-train $* did not write $name/metrics.json" >&2
        exit 1
    fi
    echo "smoke_install: $name ok ($((SECONDS - start)) s): tfnet-train $*"
}
smoke transcriptionnet experiment=smoke train.progress=false
smoke tfnet model=tfnet experiment=smoke_tfnet
smoke genonet model=genonet experiment=smoke_genonet
echo "smoke_install: wheel build, install and 3 smoke runs in ${SECONDS} s"
