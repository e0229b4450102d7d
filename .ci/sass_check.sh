#!/usr/bin/env bash
# Checks the machine code of every tensor-core kernel: each PTX that build.rs produced is
# assembled for sm_90 (the H100/H200) and disassembled with cuobjdump, and every kernel named
# *_mma_* must contain its tensor-core instructions — HMMA.1688.F32.TF32 (tf32, tf32x3) or
# HMMA.16816.F32.BF16 (bf16), LDSM (ldmatrix) and LDGSTS (cp.async). A kernel without them
# (the compiler fell back to something else, or the source lost its mma) fails CI.
#
#   .ci/sass_check.sh [TARGET_DIR] [REPORT]
#
# TARGET_DIR as for .ci/ptxas_check.sh; REPORT: default TARGET_DIR/sass_report.txt.
# ptxas: $SGLRP_PTXAS or `ptxas`; cuobjdump: $SGLRP_CUOBJDUMP, `cuobjdump` on PATH, or the one
# .ci/install_cuda_wheels.sh puts beside ptxas.
set -euo pipefail
target="${1:-${CARGO_TARGET_DIR:-target}}"
report="${2:-$target/sass_report.txt}"
ptxas="${SGLRP_PTXAS:-$(command -v ptxas || true)}"
cuobjdump="${SGLRP_CUOBJDUMP:-$(command -v cuobjdump || echo "$(dirname "${ptxas:-.}")/cuobjdump")}"
[ -x "$ptxas" ] || { echo "sass_check.sh: no ptxas (set SGLRP_PTXAS)" >&2; exit 1; }
[ -x "$cuobjdump" ] || { echo "sass_check.sh: no cuobjdump (set SGLRP_CUOBJDUMP)" >&2; exit 1; }

. "$(dirname "$0")/kernel_ptx.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$report")"
: > "$work/sass"
for ptx in "$out"/*.ptx; do
    grep -q '_mma_' "$ptx" || continue
    cubin="$work/$(basename "$ptx" .ptx).cubin"
    "$ptxas" -arch="$arch" -o "$cubin" "$ptx"
    "$cuobjdump" -sass "$cubin" >> "$work/sass"
done

status=0
python3 - "$work/sass" > "$report" <<'PY' || status=$?
import re, sys
counts, kernel = {}, None
for line in open(sys.argv[1]):
    m = re.search(r'Function : (\S+)', line)
    if m:
        kernel = m.group(1)
        counts[kernel] = dict(hmma_tf32=0, hmma_bf16=0, ldsm=0, ldgsts=0)
        continue
    if kernel is None:
        continue
    c = counts[kernel]
    c['hmma_tf32'] += len(re.findall(r'HMMA\.1688\.F32\.TF32', line))
    c['hmma_bf16'] += len(re.findall(r'HMMA\.16816\.F32\.BF16', line))
    c['ldsm'] += len(re.findall(r'\bLDSM\b', line))
    c['ldgsts'] += len(re.findall(r'\bLDGSTS\b', line))
bad = []
print('tensor-core kernels: HMMA, LDSM and LDGSTS instructions in the sm_90 machine code')
print(f"{'kernel':28s} {'hmma_tf32':>9s} {'hmma_bf16':>9s} {'ldsm':>5s} {'ldgsts':>6s}")
for k, c in sorted(counts.items()):
    if '_mma_' not in k or '_reduce_' in k:
        continue
    hmma = c['hmma_bf16'] if '_bf16' in k else c['hmma_tf32']
    print(f"{k:28s} {c['hmma_tf32']:9d} {c['hmma_bf16']:9d} {c['ldsm']:5d} {c['ldgsts']:6d}")
    if hmma == 0 or c['ldsm'] == 0 or c['ldgsts'] == 0:
        bad.append(k)
checked = [k for k in counts if '_mma_' in k and '_reduce_' not in k]
if not checked:
    print('no tensor-core kernels found')
    sys.exit(2)
if bad:
    print('MISSING tensor-core instructions in: ' + ', '.join(bad))
    sys.exit(2)
print(f'every tensor-core kernel has its HMMA, LDSM and LDGSTS ({len(checked)} kernels)')
PY
cat "$report"
exit $status
