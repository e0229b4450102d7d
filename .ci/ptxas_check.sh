#!/usr/bin/env bash
# Assembles every PTX that build.rs produced for sm_90 (H100/H200) with `ptxas -v`, writes the
# report (registers, shared memory, stack and spills per kernel) and fails on any register spill
# or local-memory stack, which would mean a kernel's registers or arrays ended up in slow memory.
#
#   .ci/ptxas_check.sh [TARGET_DIR] [REPORT]
#
# TARGET_DIR: where cargo built (default $CARGO_TARGET_DIR or ./target); the newest
# build/sglrp-*/out/*.ptx set is checked. REPORT: default TARGET_DIR/ptxas_report.txt.
# ptxas: $SGLRP_PTXAS, else `ptxas` on PATH, else $CUDA_PATH/bin/ptxas.
set -euo pipefail
target="${1:-${CARGO_TARGET_DIR:-target}}"
report="${2:-$target/ptxas_report.txt}"
ptxas="${SGLRP_PTXAS:-$(command -v ptxas || echo "${CUDA_PATH:-/usr/local/cuda}/bin/ptxas")}"
[ -x "$ptxas" ] || { echo "ptxas_check.sh: no ptxas (set SGLRP_PTXAS)" >&2; exit 1; }

. "$(dirname "$0")/kernel_ptx.sh"

mkdir -p "$(dirname "$report")"
: > "$report.raw"
status=0
for ptx in "$out"/*.ptx; do
    echo "== $(basename "$ptx")" >> "$report.raw"
    if ! "$ptxas" -arch="$arch" -v -o /dev/null "$ptx" >> "$report.raw" 2>&1; then
        echo "ptxas_check.sh: ptxas failed on $ptx" >&2
        status=1
    fi
done

# One line per kernel: name, registers, shared memory, stack frame, spill stores/loads.
python3 - "$arch" "$report.raw" > "$report" <<'PY' || status=1
import re, sys
arch, raw = sys.argv[1], open(sys.argv[2]).read()
rows, kernel = {}, None
for line in raw.splitlines():
    m = re.search(r"Compiling entry function '([^']+)'", line)
    if m:
        kernel = m.group(1)
        rows[kernel] = dict(regs=0, smem=0, stack=0, spill_st=0, spill_ld=0)
        continue
    if kernel is None:
        continue
    m = re.search(r'(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads', line)
    if m:
        rows[kernel].update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
    m = re.search(r'Used (\d+) registers', line)
    if m:
        rows[kernel]['regs'] = int(m.group(1))
        s = re.search(r'(\d+) bytes smem', line)
        rows[kernel]['smem'] = int(s.group(1)) if s else 0
print(f'ptxas -arch={arch}: registers, shared memory, stack and spills per kernel')
print(f"{'kernel':28s} {'regs':>5s} {'smem':>7s} {'stack':>6s} {'spill_st':>8s} {'spill_ld':>8s}")
bad = []
for k, r in rows.items():
    print(f"{k:28s} {r['regs']:5d} {r['smem']:7d} {r['stack']:6d} {r['spill_st']:8d} {r['spill_ld']:8d}")
    if r['stack'] or r['spill_st'] or r['spill_ld']:
        bad.append(k)
if not rows:
    print('no kernels found in the ptxas output')
    sys.exit(2)
if bad:
    print('SPILLS or stack frames in: ' + ', '.join(bad))
    sys.exit(2)
print(f'no spills, no stack frames ({len(rows)} kernels)')
PY
cat "$report"
echo "full ptxas output: $report.raw"
exit $status
