#!/usr/bin/env bash
# Submits an evaluation split into SHARDS array tasks and the merge that waits for them:
#
#   examples/slurm/submit.sh MANIFEST OUT [SHARDS] [sbatch options for the array…]
#
# e.g. `submit.sh scenes/manifest.jsonl results 8 --partition=gpu`. Environment: SGLRP (the
# binary), SGLRP_DEVICE (default cuda), SGLRP_EVAL_ARGS (more eval options). Prints the two job
# ids: the array's, then the merge's.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 MANIFEST OUT [SHARDS] [sbatch options for the array...]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
manifest=$(realpath "$1")
out=$(realpath -m "$2")
shards=${3:-4}
shift $(($# < 3 ? $# : 3))
case $shards in
    '' | *[!0-9]* | 0)
        echo "$0: SHARDS must be a whole number ≥ 1, got '$shards'" >&2
        exit 2
        ;;
esac
mkdir -p "$out"

export MANIFEST=$manifest OUT=$out
array=$(sbatch --parsable --array="0-$((shards - 1))" --chdir="$out" "$@" \
    "$here/eval_array.sbatch")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
    --chdir="$out" "$here/merge.sbatch")
echo "$array $merge"
