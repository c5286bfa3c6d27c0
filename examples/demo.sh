#!/usr/bin/env bash
# `make demo`: Example 1 of hpogrid 1.x's README (docs/HPOGRID1.md), end to end on this machine.
# Creates the configs and the project (recreate: safe to run again), runs an embedded iDDS-style
# campaign (80 points, 2 at a time, Gaussian-process "bayesian" search), and prints the best point.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export HPOGRID_HOME="${HPOGRID_DEMO_HOME:-${here}/../.hpogrid-demo}"
bin="${VENV_BIN:-${here}/../.venv/bin}"
hpogrid="${bin}/hpogrid"
[ -x "${hpogrid}" ] || hpogrid="$(command -v hpogrid)"

echo "== hpogrid demo (HPOGRID_HOME=${HPOGRID_HOME})"
"${hpogrid}" model_config recreate simple_objective_model --script simple_objective.py --model simple_objective >/dev/null
"${hpogrid}" search_space recreate simple_objective_space \
  '{"height":{"method":"uniform","dimension":{"low":-100,"high":100}}, "width":{"method":"uniform","dimension":{"low":0,"high":20}}}' >/dev/null
"${hpogrid}" hpo_config recreate bayesian_min_loss --algorithm bayesian --metric loss --mode min \
  --num_trials 80 --max_concurrent 2 --seed 7 >/dev/null
"${hpogrid}" grid_config recreate local_embedded --backend embedded >/dev/null
"${hpogrid}" project recreate simple_objective --scripts_path "${here}/scripts/simple_objective.py" \
  --model_config simple_objective_model --search_space simple_objective_space \
  --hpo_config bayesian_min_loss --grid_config local_embedded >/dev/null

echo "== steeringExec: $("${hpogrid}" steering_exec simple_objective --local)"
echo "== evaluationExec: $("${hpogrid}" evaluation_exec simple_objective --local)"
echo "== submit_idds simple_objective (embedded: 80 points, 2 concurrent jobs, bayesian; optimum -17 at height 14, width 20)"
"${hpogrid}" submit_idds simple_objective --n_points_per_iteration 2
echo "== campaigns"
"${hpogrid}" tasks show --taskname simple_objective --limit 5 --local
