#!/usr/bin/env bash
# One prepared GPU check of the CUDA backend at every precision, in two stages (the device has
# the CUDA toolkit, PyTorch and Nsight Compute, but no Rust toolchain and no network).
#
#   benches/device_check.sh stage [DIR]            here: build release binaries with the kernels
#                                                  (SGLRP_REQUIRE_KERNELS=1), stage them, the test
#                                                  executable and a Zennit 0.5.1 wheel into DIR
#                                                  (.device)
#   benches/device_check.sh device [DIR] [--dry-run]
#                                                  there, from the repository root with DIR
#                                                  carried: for each precision f32, tf32, bf16:
#                                                  `sglrp info` (the kernels it runs), `sglrp
#                                                  verify`, `sglrp bench` at batch 1, 8, 32, 128,
#                                                  and Zennit on PyTorch at the same precision
#                                                  and batch sizes (benches/zennit_gpu.py); then
#                                                  the ignored GPU tests and ncu inside the NVTX
#                                                  range relevance/conv3_2. One report, JSON and
#                                                  markdown (card, date, numbers per precision,
#                                                  sglrp ÷ Zennit), and the full log, under
#                                                  $OUT/benches/results/<card>_<date>/ (without
#                                                  $OUT: DIR/out/…). Copy that folder into
#                                                  benches/results/.
#
# Without a GPU (no working nvidia-smi), or with --dry-run, `device` rehearses what it can: the
# argument parsing of every sglrp command it runs, `sglrp bench --device cpu` on one 32×32 image,
# the Python syntax of zennit_gpu.py and device_report.py, and the report, into /tmp/device_check_dry/… (or $OUT/…).
# The sglrp binary is DIR/bin/sglrp, else $SGLRP_BIN, else $CARGO_TARGET_DIR/debug/sglrp.
#
# Time: every step has a cap, and all of them share one budget ($DEVICE_CHECK_BUDGET seconds,
# default 510): a step gets at most what is left of it, and a step with under 5 s left is
# skipped, so the whole script ends within about 8.5 minutes, inside the device tool's
# 10-minute call. On an H200 a normal run should take about 7.5 minutes, by the 2026-11-27 run's
# step times (benches/results/cuda_h200_2026-11-27): three verify runs of about 50 s each (their
# CPU reference dominates), the GPU tests about 120 s, bench and Zennit 20–30 s per precision;
# the GPU tests come late, so a slow run cuts them and ncu, not the numbers. Each step prints
# its seconds and the time spent so far.
# With the device tool: run `benches/device_check.sh stage`, then run
# `bash benches/device_check.sh device` with carry [".device"] and timeout_s 600.
set -uo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 stage [DIR] | device [DIR] [--dry-run]" >&2; exit 2; }
mode="${1:-}"
[ -n "$mode" ] || usage
shift
dir=.device
dry=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=1 ;;
        -*) usage ;;
        *) dir="$arg" ;;
    esac
done
PRECISIONS="f32 tf32 bf16"
BATCHES=1,8,32,128

stage() {
    set -e
    grep -qx "/$dir/" .git/info/exclude 2>/dev/null || echo "/$dir/" >> .git/info/exclude
    eval "$(.ci/install_cuda_wheels.sh "${SGLRP_CUDA_VENV:-.venv}")"
    export SGLRP_REQUIRE_KERNELS=1
    cargo build --release --tests --benches
    rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/wheels"
    exe() {  # exe test|bench NAME: the executable cargo builds for that target (bench: release)
        cargo "$1" --"$1" "$2" $([ "$1" = test ] && echo --release) --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == sys.argv[1] and m["target"]["kind"] != ["bin"]:
        print(m["executable"])' "$2"
    }
    cp "$(exe test cuda_ops)" "$dir/bin/cuda_ops"
    cp "$(exe bench cuda)" "$dir/bin/cuda"
    cargo build --release --bin sglrp && cp "${CARGO_TARGET_DIR:-target}/release/sglrp" "$dir/bin/sglrp"
    strip "$dir"/bin/* 2>/dev/null || true
    python3 -m pip download --quiet --no-deps zennit==0.5.1 -d "$dir/wheels"
    pwd > "$dir/manifest_dir"
    sed -n 's/^pub const BUILT_WITH: &str = "\(.*\)";/\1/p' \
        "$(ls -td "${CARGO_TARGET_DIR:-target}"/release/build/sglrp-*/out | head -1)/kernels.rs" > "$dir/kernels"
    du -sh "$dir" "$dir"/bin/* "$dir"/wheels/*
    echo "staged in $dir: now run 'bash benches/device_check.sh device' on the device with carry [\"$dir\"]"
}

device() {
    budget="${DEVICE_CHECK_BUDGET:-510}"
    if [ "$dry" = 0 ] && ! nvidia-smi -L > /dev/null 2>&1; then
        echo "no GPU here (nvidia-smi fails): a dry run"
        dry=1
    fi
    if [ "$dry" = 1 ]; then
        out_root="${OUT:-/tmp/device_check_dry}"
        card=cpu_dry_run
    else
        out_root="${OUT:-$dir/out}"
        card="cuda_$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 \
            | tr 'A-Z' 'a-z' | sed 's/^nvidia //; s/[^a-z0-9]\+/_/g; s/_$//')"
    fi
    date_tag="$(date -u +%Y-%m-%d)"
    report_dir="$out_root/benches/results/${card}_${date_tag}"
    work=/tmp/device_check
    rm -rf "$work" && mkdir -p "$report_dir" "$work"
    log="$report_dir/device_check.log"
    : > "$log"
    steps="$work/steps.tsv"
    : > "$steps"
    start=$SECONDS
    step() {  # step NAME CAP COMMAND…: runs it within what is left of the budget, logs it
        local name="$1" cap="$2"
        shift 2
        local left=$((budget - (SECONDS - start)))
        local limit=$((cap < left ? cap : left))
        if [ "$limit" -lt 5 ]; then
            echo "=== $name: skipped, ${left}s of the ${budget}s budget left" | tee -a "$log"
            printf '%s\tskipped\t0\n' "$name" >> "$steps"
            return
        fi
        echo "=== $name (timeout ${limit}s): $*" | tee -a "$log"
        local t0=$SECONDS
        timeout --kill-after=5 "$limit" "$@" > "$work/$name.out" 2>&1
        local rc=$?
        cat "$work/$name.out" >> "$log"
        tail -n 25 "$work/$name.out"
        printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$steps"
        echo "=== $name: exit $rc after $((SECONDS - t0))s; $((SECONDS - start))s of ${budget}s spent" \
            | tee -a "$log"
    }
    skip() {  # skip NAME WHY
        echo "=== $1: skipped ($2)" | tee -a "$log"
        printf '%s\tskipped\t0\n' "$1" >> "$steps"
    }

    sglrp="$dir/bin/sglrp"
    if [ "$dry" = 1 ] && [ ! -x "$sglrp" ]; then
        sglrp="${SGLRP_BIN:-${CARGO_TARGET_DIR:-target}/debug/sglrp}"
    fi
    [ -x "$sglrp" ] || { echo "no sglrp binary at $sglrp (stage first)" | tee -a "$log"; exit 1; }
    echo "sglrp: $sglrp; report: $report_dir; budget ${budget}s" | tee -a "$log"

    if [ "$dry" = 1 ]; then
        for p in $PRECISIONS; do
            step "info_$p" 20 "$sglrp" info --device cpu --precision "$p"
            step "verify_$p" 10 "$sglrp" verify --device cpu --precision "$p" --help
            step "bench_$p" 60 "$sglrp" bench --device cpu --precision "$p" --side 32 \
                --batch-size 1 --repeats 1 --method lrp --json "$work/bench_$p.json"
        done
        step python_syntax 20 python3 -m py_compile benches/zennit_gpu.py benches/device_report.py
        for name in tests ncu; do skip "$name" "no GPU"; done
    else
        # Tests find their fixtures through the path the crate was built at.
        manifest="$(cat "$dir/manifest_dir" 2>/dev/null || true)"
        if [ -n "$manifest" ] && [ ! -e "$manifest/Cargo.toml" ]; then
            mkdir -p "$(dirname "$manifest")" && ln -sfn "$PWD" "$manifest"
        fi
        # NVTX: CUDA 13 ships libnvtx3interop (PyTorch's nvidia-nvtx wheel), not libnvToolsExt.
        nvtx="$(find / -xdev \( -name 'libnvToolsExt.so*' -o -name 'libnvtx3interop.so*' \) 2>/dev/null | head -1)"
        [ -n "$nvtx" ] && export SGLRP_NVTX_LIB="$nvtx"
        echo "NVTX library: ${nvtx:-none found}" | tee -a "$log"

        step nvidia_smi 10 nvidia-smi
        # The verdicts and sglrp's numbers first, so that a short budget cuts the extras.
        for p in $PRECISIONS; do
            step "info_$p" 15 "$sglrp" info --device cuda --precision "$p"
            step "verify_$p" 80 "$sglrp" verify --device cuda --precision "$p" --json "$work/verify_$p.json"
            step "bench_$p" 60 "$sglrp" bench --device cuda --precision "$p" --batch-size "$BATCHES" \
                --repeats 3 --json "$work/bench_$p.json"
        done
        step save_model 20 "$dir/bin/cuda" save-model "$work/vgg16.safetensors"
        python3 -m pip install -q --no-index --no-deps --target "$work/site" "$dir"/wheels/zennit-*.whl \
            >> "$log" 2>&1
        for p in $PRECISIONS; do
            step "zennit_$p" 60 env PYTHONPATH="$work/site" PYTHONUNBUFFERED=1 python3 benches/zennit_gpu.py \
                --precision "$p" --batch-sizes "$BATCHES" --repeats 3 \
                --weights "$work/vgg16.safetensors" --json "$work/zennit_$p.json"
        done
        step tests 150 "$dir/bin/cuda_ops" --include-ignored --test-threads=1
        # Ranges nest by their `/` parts (src/backend/cuda/nvtx.rs): relevance › conv3_2.
        step ncu 30 ncu --nvtx --nvtx-include "relevance/conv3_2/" --metrics gpu__time_duration.sum \
            "$dir/bin/cuda" explain-once --batch 1
    fi
    echo "=== all steps: $((SECONDS - start))s of ${budget}s" | tee -a "$log"
    python3 benches/device_report.py "$work" "$report_dir" "$dir" "$card" "$date_tag" "$dry" "$PRECISIONS"
}

case "$mode" in
    stage) stage ;;
    device) device ;;
    *) usage ;;
esac
