# hpogrid 1.x's setupenv.sh set HPOGRID_BASE_PATH to its source tree; its README's examples use
# ${HPOGRID_BASE_PATH}/example/scripts/... . Source this file (bash or zsh) and they paste as written:
#     source examples/1.x/setupenv.sh
# (hpogrid 2 needs nothing else from it: no conda environment, no PYTHONPATH.)
if [ -n "${BASH_SOURCE:-}" ]; then _hpogrid_here="${BASH_SOURCE[0]}"; else _hpogrid_here="${(%):-%x}"; fi
export HPOGRID_BASE_PATH="$(cd "$(dirname "$_hpogrid_here")" && pwd)"
unset _hpogrid_here
echo "HPOGRID_BASE_PATH=$HPOGRID_BASE_PATH"
