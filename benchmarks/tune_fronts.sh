#!/usr/bin/env bash
# The fronts of the README: IGR, JR, J-SIGR and TRADES tuned with an equal budget on full
# Fashion-MNIST (quick variants: 4 epochs on 4,000 training images, 200 test images), sampler
# seed 0, baselines plain / FGSM-RS / PGD-AT as reference points; then the J-SIGR paper's
# transfer objective (the same four; the baselines again, with IGR), in a second figure.
# Usage: benchmarks/tune_fronts.sh [TRIALS]
set -euo pipefail
trials=${1:-4}
tune() { .venv/bin/tfjsigr tune "$@" --trials "$trials" --quick --seed 0 --source full; }
tune zoo/recipes/jsigr.toml
tune zoo/recipes/igr.toml --baseline zoo/recipes/plain.toml --baseline zoo/recipes/fgsm_rs.toml \
  --baseline zoo/recipes/pgd_at.toml
tune zoo/recipes/jr.toml
tune zoo/recipes/trades.toml
tune zoo/recipes/jsigr.toml --robustness transfer --out runs/tune-jsigr-transfer
tune zoo/recipes/jr.toml --robustness transfer --out runs/tune-jr-transfer
tune zoo/recipes/trades.toml --robustness transfer --out runs/tune-trades-transfer
tune zoo/recipes/igr.toml --robustness transfer --out runs/tune-igr-transfer \
  --baseline zoo/recipes/plain.toml --baseline zoo/recipes/fgsm_rs.toml \
  --baseline zoo/recipes/pgd_at.toml
.venv/bin/python benchmarks/tune_fronts.py runs/tune-igr runs/tune-jr runs/tune-jsigr \
  runs/tune-trades --trials "$trials" --out docs/tune_front.png
.venv/bin/python benchmarks/tune_fronts.py runs/tune-igr-transfer runs/tune-jr-transfer \
  runs/tune-jsigr-transfer runs/tune-trades-transfer --trials "$trials" \
  --min-clean-shown 0.55 --out docs/tune_front_transfer.png
