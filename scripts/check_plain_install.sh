#!/usr/bin/env bash
# A plain `pip install .` in a fresh virtual environment, as a Python user installs: every
# module of the package imports (test modules aside) and the CLI runs a command end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
start=$(date +%s)
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q .
echo "plain install: $(( $(date +%s) - start )) s"
cd "$(dirname "$venv")"  # Away from the checkout: the installed package, not the source tree.
"$venv/bin/python" - <<'PY'
import importlib
import pkgutil

import tfjsigr

names = [m.name for m in pkgutil.walk_packages(tfjsigr.__path__, "tfjsigr.")]
library = [n for n in names if not n.endswith(("_test", ".conftest"))]  # Tests need pytest.
for name in library:
    importlib.import_module(name)
print(f"imported {len(library)} modules from {tfjsigr.__file__}")
PY
# One command end to end on the data the package ships: a J-SIGR model trained one short epoch.
cat > tiny.toml <<'TOML'
name = "tiny"
dataset = "fashion_mnist"
epochs = 1
batch_size = 50
train_examples = 200
eval_examples = 20
[architecture]
name = "small_cnn"
filters = [4, 8]
dense = 16
[[penalties]]
type = "jsigr"
jacobian_weight = 0.05
selective_weight = 20.0
TOML
TF_CPP_MIN_LOG_LEVEL=3 TFJSIGR_OFFLINE=1 "$venv/bin/tfjsigr" train tiny.toml --out run --source sample
test -s run/model.keras
echo "plain install: tfjsigr train ran"
