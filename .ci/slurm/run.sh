#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, as root: installs Debian's slurm-wlm and munge,
# starts munged, slurmctld and slurmd from here (state, sockets and logs in a temporary folder,
# ports of their own), submits examples/slurm over the bundled scenes as a 3-task array with
# --device cpu and the GPU request dropped, waits for the dependent merge job, and checks that the
# merged results equal one process's byte for byte. The daemons are stopped by their PIDs on exit.
#
#   .ci/slurm/run.sh [PATH/TO/sglrp]     (default: builds target/debug/sglrp)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if [ "$(id -u)" -ne 0 ]; then
    echo "$0: needs root (it installs packages and runs the Slurm daemons)" >&2
    exit 2
fi
if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge > /dev/null
fi

sglrp=${1:-}
if [ -z "$sglrp" ]; then
    cargo build --quiet --bin sglrp
    sglrp=${CARGO_TARGET_DIR:-target}/debug/sglrp
fi
sglrp=$(realpath "$sglrp")

work=$(mktemp -d /tmp/sglrp-slurm.XXXXXX)
chmod 755 "$work"
pids=()
stop() {
    local status=$?
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2> /dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2> /dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for log in "$work"/slurm*.log "$work"/munged.log "$work"/out/*.log; do
            [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap stop EXIT

# munge: a key and a socket of our own, in the foreground so that $! is the daemon.
mkdir -p "$work/munge" "$work/state" "$work/spool" "$work/out"
chmod 700 "$work/munge"
mungekey --create --keyfile="$work/munge/munge.key"
munged --foreground --force --key-file="$work/munge/munge.key" \
    --socket="$work/munge/munge.socket" --pid-file="$work/munge/munged.pid" \
    --seed-file="$work/munge/munged.seed" --log-file="$work/munged.log" \
    > "$work/munged.out.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    [ -S "$work/munge/munge.socket" ] && break
    sleep 0.1
done

host=$(hostname -s)
export SLURM_CONF=$work/slurm.conf
cat > "$SLURM_CONF" << CONF
ClusterName=sglrpci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

# In the foreground the daemons also log to stderr: kept in files, shown when the check fails.
slurmctld -D -i -f "$SLURM_CONF" > "$work/slurmctld.out.log" 2>&1 &
pids+=($!)
slurmd -D -N "$host" -f "$SLURM_CONF" > "$work/slurmd.out.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    state=$(sinfo -h -n "$host" -o %T 2> /dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.3
done
if [ "$state" != idle ]; then
    echo "$0: the node did not come up (state '${state:-none}')" >&2
    exit 1
fi
echo "slurm: one node $host ($(nproc) CPUs) up"

manifest=$repo/weights/samples/manifest.jsonl
model=$repo/tests/fixtures/small_vgg.model.safetensors
export SGLRP=$sglrp SGLRP_DEVICE=cpu SGLRP_EVAL_ARGS="--model $model --threads 1"
# The node has no GPUs: the array's --gres request is dropped, one CPU per task.
read -r array merge < <(examples/slurm/submit.sh "$manifest" "$work/out" 3 \
    --gres=none --cpus-per-task=1)
echo "slurm: array job $array (3 tasks), merge job $merge"

merge_state() { scontrol show job "$merge" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
for _ in $(seq 600); do
    state=$(merge_state)
    case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
    sleep 0.25
done
if [ "$state" != COMPLETED ]; then
    echo "$0: merge job $merge ended $state" >&2
    scontrol show job "$array" >&2 || true
    exit 1
fi
for k in 1 2 3; do
    [ -f "$work/out/eval_shard.$k-of-3.json" ] || {
        echo "$0: shard $k/3 left no record" >&2
        exit 1
    }
done

"$sglrp" eval --manifest "$manifest" --model "$model" --device cpu --out "$work/single" --quiet
for file in summary.json summary.csv per_image.csv masking_label.svg masking_second.svg pointing.svg; do
    if ! cmp -s "$work/out/$file" "$work/single/$file"; then
        echo "$0: $file of the Slurm run differs from a single process's" >&2
        diff <(head -c 2000 "$work/out/$file") <(head -c 2000 "$work/single/$file") >&2 || true
        exit 1
    fi
done
echo "slurm: merged summary of 3 array tasks equals the single-process run"
