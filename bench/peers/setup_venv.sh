#!/usr/bin/env bash
# Create bench/.venv with the peer libraries (torchdiffeq, torchdyn, diffrax).
# Idempotent: skipped when bench/.venv/.req-stamp holds the hash of requirements.txt.
# Usage: bash bench/peers/setup_venv.sh        (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(cd "$here/.." && pwd)/.venv"
req="$here/requirements.txt"
py="${PYTHON:-python3}"
stamp="$venv/.req-stamp"
hash="$( { cat "$req"; "$py" -c 'import sys; print(sys.version_info[:2])'; } | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && [ -x "$venv/bin/python" ]; then
    echo "setup_venv: $venv up to date"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "setup_venv: creating $venv with $py"
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade --quiet pip wheel
echo "setup_venv: installing $req (torch is large: a few minutes)"
"$venv/bin/python" -m pip install -r "$req"
"$venv/bin/python" - <<'PY'
import torch, torchdiffeq, torchdyn, jax, diffrax, equinox, optax, numpy, sklearn
print("setup_venv: ok torch", torch.__version__, "torchdiffeq", torchdiffeq.__version__,
      "jax", jax.__version__, "diffrax", diffrax.__version__, "numpy", numpy.__version__)
PY
echo "$hash" > "$stamp"
