#!/usr/bin/env bash
# One prepared GPU check of the CUDA backend, in two stages (the device has the CUDA toolkit,
# PyTorch and Nsight Compute, but no Rust toolchain and no network).
#
#   benches/device_check.sh stage [DIR]    here: build release binaries with the kernels
#                                          (SGLRP_REQUIRE_KERNELS=1), stage them, the test
#                                          executable and a Zennit 0.5.1 wheel into DIR (.device)
#   benches/device_check.sh device [DIR]   there, from the repository root with DIR carried:
#                                          nvidia-smi, the ignored GPU tests, verify on VGG16
#                                          224×224 batch 8 (all presets and methods), bench,
#                                          Zennit on PyTorch with the same weights and batch
#                                          sizes, and ncu limited to the NVTX range
#                                          relevance/conv3_2 — one JSON and one markdown report
#                                          (+ the full log) under $OUT (else DIR/out).
#
# With the device tool: run `benches/device_check.sh stage`, then run
# `bash benches/device_check.sh device` with carry [".device"] and timeout_s 600.
# Every device step has its own timeout and the script goes on after a failure; the steps' caps
# add up to about 9 minutes, a normal run takes far less.
set -uo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: $0 stage|device [DIR]}"
dir="${2:-.device}"

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
    out="${OUT:-$dir/out}"
    work=/tmp/device_check
    rm -rf "$work" && mkdir -p "$out" "$work"
    log="$out/device_check.log"
    : > "$log"
    steps="$work/steps.tsv"
    : > "$steps"
    step() {  # step NAME TIMEOUT COMMAND…: runs it, logs it, records status and seconds
        local name="$1" limit="$2"
        shift 2
        echo "=== $name (timeout ${limit}s): $*" | tee -a "$log"
        local t0=$SECONDS
        timeout --kill-after=10 "$limit" "$@" > "$work/$name.out" 2>&1
        local rc=$?
        cat "$work/$name.out" >> "$log"
        tail -n 40 "$work/$name.out"
        printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$steps"
        echo "=== $name: exit $rc after $((SECONDS - t0))s" | tee -a "$log"
    }
    # Tests find their fixtures through the path the crate was built at.
    manifest="$(cat "$dir/manifest_dir" 2>/dev/null || true)"
    if [ -n "$manifest" ] && [ ! -e "$manifest/Cargo.toml" ]; then
        mkdir -p "$(dirname "$manifest")" && ln -sfn "$PWD" "$manifest"
    fi
    # NVTX: CUDA 13 ships libnvtx3interop (PyTorch's nvidia-nvtx wheel), not libnvToolsExt.
    nvtx="$(find / -xdev \( -name 'libnvToolsExt.so*' -o -name 'libnvtx3interop.so*' \) 2>/dev/null | head -1)"
    [ -n "$nvtx" ] && export SGLRP_NVTX_LIB="$nvtx"
    echo "NVTX library: ${nvtx:-none found}" | tee -a "$log"

    step nvidia_smi 15 nvidia-smi
    step tests 150 "$dir/bin/cuda_ops" --include-ignored --test-threads=1
    step verify 100 "$dir/bin/cuda" verify --batch 8 --side 224 \
        --json "$work/verify.json" --md "$work/verify.md"
    if "$dir/bin/sglrp" verify --help > /dev/null 2>&1; then
        step cli_verify 80 "$dir/bin/sglrp" verify --device cuda --json "$work/cli_verify.json"
    fi
    step bench 60 "$dir/bin/cuda" bench --batch-sizes 1,8,32 --side 224 \
        --json "$work/bench.json" --md "$work/bench.md"
    step save_model 20 "$dir/bin/cuda" save-model "$work/vgg16.safetensors"
    python3 -m pip install -q --no-index --no-deps --target "$work/site" "$dir"/wheels/zennit-*.whl \
        >> "$log" 2>&1
    step zennit 60 env PYTHONPATH="$work/site" PYTHONUNBUFFERED=1 python3 benches/zennit_gpu.py \
        --batch-sizes 1,8,32 --weights "$work/vgg16.safetensors" --json "$work/zennit.json"
    # Ranges nest by their `/` parts (src/backend/cuda/nvtx.rs): relevance › conv3_2.
    step ncu 40 ncu --nvtx --nvtx-include "relevance/conv3_2/" --metrics gpu__time_duration.sum \
        "$dir/bin/cuda" explain-once --batch 1

    python3 - "$work" "$out" "$dir" <<'PY'
import json, os, re, subprocess, sys, time
work, out, stage = sys.argv[1:4]
def load(name):
    try:
        with open(os.path.join(work, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def text(name):
    try:
        with open(os.path.join(work, name)) as f:
            return f.read()
    except OSError:
        return ''
steps = [dict(zip(('step', 'exit', 'seconds'), l.split('\t'))) for l in text('steps.tsv').splitlines()]
try:
    smi = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'],
                         capture_output=True, text=True, timeout=30).stdout.strip()
except (OSError, subprocess.SubprocessError) as e:
    smi = f'nvidia-smi failed: {e}'
tests = text('tests.out')
summary = re.findall(r'test result: .*', tests)
ncu = text('ncu.out')
kernels = sorted(set(re.findall(r'^\s*(conv_\w+|dense_\w+|maxpool_\w+|relu_backward|prepare_conv|positive)\b', ncu, re.M)))
report = {
    'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
    'gpu': smi,
    'kernels_built_with': open(os.path.join(stage, 'kernels')).read().strip()
        if os.path.exists(os.path.join(stage, 'kernels')) else '',
    'steps': steps,
    'tests': summary,
    'verify': load('verify.json'),
    'verify_demo_model': load('cli_verify.json'),
    'bench': load('bench.json'),
    'zennit': load('zennit.json'),
    'ncu_nvtx_relevance_conv3_2': {'kernels_profiled': kernels,
                                   'proved': any(k.startswith('conv_') for k in kernels)},
}
def passed(v, step):
    return bool(v) and bool(v['methods']) \
        and all(c['pass'] for c in v['layers'] + v['methods']) \
        and any(s['step'] == step and s['exit'] == '0' for s in steps)
verify_ok = passed(report['verify'], 'verify') and passed(report['verify_demo_model'], 'cli_verify')
report['verify_passed'] = verify_ok
with open(os.path.join(out, 'device_report.json'), 'w') as f:
    json.dump(report, f, indent=2)
md = [f"# CUDA device check — {report['gpu']} — {report['date']}", '',
      f"kernels: {report['kernels_built_with']}", '', '| step | exit | seconds |', '|---|---|---|']
md += [f"| {s['step']} | {s['exit']} | {s['seconds']} |" for s in steps]
md += ['', '## GPU tests (cuda_ops --include-ignored)', ''] + [f'- {s}' for s in summary]
md += [f'- {l.strip()}' for l in tests.splitlines() if 'FAILED' in l or 'panicked' in l]
md += ['', '## verify (CUDA f32 vs CPU, docs/numerics.md §Bounds)', '', '### VGG16, random weights (benches/cuda.rs verify)', '',
       text('verify.md') or '(no result)', '', '### the demo model on the bundled samples (sglrp verify --device cuda)', '',
       text('cli_verify.out').strip() or '(no result)', '',
       f"**verify {'PASSED' if verify_ok else 'FAILED'}**", '', '## bench', '', text('bench.md') or '(no result)',
       '', '## Zennit 0.5.1 on PyTorch, same GPU, same weights', '']
z = report['zennit']
if z:
    md += [f"{z['config']}", '', '| pass | batch | ms/batch | images/s |', '|---|---|---|---|']
    md += [f"| {r['pass']} | {r['batch']} | {r['ms_per_batch']:.2f} | {r['images_per_s']:.1f} |" for r in z['rows']]
else:
    md.append('(no result)')
b = report['bench']
if z and b:
    ours = {(r['pass'], r['batch']): r['images_per_s'] for r in b['rows']}
    md += ['', '## sglrp ÷ Zennit, images/s, same GPU', '', '| pass | batch | sglrp | Zennit | ratio |',
           '|---|---|---|---|---|']
    md += [f"| {r['pass']} | {r['batch']} | {ours[(r['pass'], r['batch'])]:.1f} | {r['images_per_s']:.1f} | "
           f"{ours[(r['pass'], r['batch'])] / r['images_per_s']:.2f} |"
           for r in z['rows'] if (r['pass'], r['batch']) in ours]
md += ['', '## ncu --nvtx --nvtx-include "relevance/conv3_2/"', '',
       f"kernels profiled inside the range: {', '.join(kernels) or 'none'}"]
with open(os.path.join(out, 'device_report.md'), 'w') as f:
    f.write('\n'.join(md) + '\n')
print('\n'.join(md))
PY
}

case "$mode" in
    stage) stage ;;
    device) device ;;
    *) echo "usage: $0 stage|device [DIR]" >&2; exit 2 ;;
esac
