# Sourced by .ci/ptxas_check.sh and .ci/sass_check.sh once $target (TARGET_DIR) is set; sets
# $arch, the sm_ both assemble for (CHECK_SM in src/backend/cuda/config.rs), and $out, the out/
# folder of the most recent build script run that wrote kernels (the newest
# build/sglrp-*/out/*.ptx set), or exits naming the calling script.
arch="$(sed -n 's/^pub const CHECK_SM: &str = "\(.*\)";/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../src/backend/cuda/config.rs")"
out="$(ls -td "$target"/*/build/sglrp-*/out "$target"/build/sglrp-*/out 2>/dev/null \
       | while read -r d; do ls "$d"/*.ptx >/dev/null 2>&1 && { echo "$d"; break; }; done || true)"
[ -n "$out" ] || { echo "$(basename "$0"): no PTX under $target (was the crate built with NVRTC?)" >&2; exit 1; }
