#!/usr/bin/env bash
# Minimal install check (issue 14, item 15): the core package alone, as a choice modeller
# installs it (`pip install .`: no torch, no Pyro, no extras), in a fresh temporary virtual
# environment, then a smoke run of the core routes on shipped data: import, star import,
# MNL, a small mixed logit (simulated ML) and a tiny Bayesian fit (NUTS, NumPyro + ArviZ are
# core dependencies). Downloads the core dependencies from the package index.
#
# Usage: .ci/minimal_install.sh   (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hetpref-minimal.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Install from a copy of the files git tracks or would track (not the ignored .venv, build
# outputs or egg-info), so the check sees what a clone sees and writes nothing here.
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -cf - -T - 2>/dev/null | tar -xf - -C "$WORK/src"

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"$WORK/venv/bin/python" -m pip install --quiet "$WORK/src"

# Run outside the source tree, so `import mixlogit` is the installed package.
cd "$WORK"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$WORK/venv/bin/python" - <<'EOF'
import importlib.util
import warnings

for optional in ("torch", "pyro"):
    assert importlib.util.find_spec(optional) is None, f"{optional} is not a core dependency"

import mixlogit

namespace: dict = {}
exec("from mixlogit import *", namespace)
assert "MixedLogit" in namespace and "jax" not in namespace and "torch" not in namespace
assert mixlogit.__file__.startswith(__import__("sys").prefix), mixlogit.__file__

from mixlogit import ChoiceData, MixedLogit, MultinomialLogit

canada = ChoiceData(
    mixlogit.load_modecanada(), choice="choice", alternative="alt", situation="case"
)
mnl = MultinomialLogit(["cost", "ivt", "ovt", "ASC_car", "ASC_bus"]).fit(canada)
assert mnl.converged, mnl.message
print(f"MNL ModeCanada: log-likelihood {mnl.loglik:.3f}")

frame = mixlogit.load_electricity()
frame = frame[frame["id"].isin(frame["id"].unique()[:40])]
electricity = ChoiceData(frame, choice="choice", alternative="alt", situation="chid", panel="id")
mixed = MixedLogit(fixed=["pf", "cl", "loc", "wk"], random={"tod": "normal"}).fit(
    electricity, num_draws=50
)
assert mixed.converged, mixed.message
print(f"mixed logit Electricity (40 people, 50 draws): log-likelihood {mixed.loglik:.3f}")
print(mixed.table().loc["sd.tod"].to_string())

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a tiny chain: ESS warnings are expected
    bayes = MixedLogit(fixed=["pf", "cl"], random={"tod": "normal"}).fit(
        electricity, method="nuts", num_warmup=100, num_samples=100, num_chains=1, seed=3
    )
population = bayes.population()
assert population["posterior_mean"].notna().all()
people = bayes.individual_coefficients()["person"].nunique()
assert people == electricity.num_panels
print(f"Bayesian NUTS Electricity: {len(population)} population rows, {people} people")
print("minimal install: OK")
EOF
