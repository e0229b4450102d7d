#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 PyPI wheels that build.rs uses to compile kernels/*.cu (NVRTC,
# the CUDA headers), that .ci/ptxas_check.sh uses to check them (ptxas) and that
# .ci/sass_check.sh uses to read their machine code (cuobjdump, nvdisasm: 13.2.51 reads the 13.0
# toolchain's output), into the virtual environment VENV (created if missing), then prints the
# environment variables to export.
#
#   .ci/install_cuda_wheels.sh VENV            # install, print `export …` lines
#   eval "$(.ci/install_cuda_wheels.sh VENV)"  # install and export in this shell
#
# Only PyPI is used, through pip; nothing is downloaded when the wheels are already installed.
set -euo pipefail
venv="${1:?usage: $0 VENV}"
pins=(nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.88 nvidia-cuda-nvcc==13.0.88
      nvidia-cuda-cuobjdump==13.2.51 nvidia-cuda-nvdisasm==13.2.51)

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
# Each pin is checked on its own: a venv holding only some of the wheels gets the rest.
installed="$("$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null)"
for pin in "${pins[@]}"; do
    if ! grep -qix "$pin" <<<"$installed"; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "${pins[@]}" >&2
        break
    fi
done
venv="$(cd "$venv" && pwd)"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cuda="$site/nvidia/cu13"
for f in "$cuda/lib/libnvrtc.so.13" "$cuda/include/cuda_fp16.h" "$cuda/bin/ptxas" \
    "$cuda/bin/cuobjdump"; do
    [ -e "$f" ] || { echo "install_cuda_wheels.sh: $f missing after install" >&2; exit 1; }
done
echo "export SGLRP_CUDA_WHEELS=$venv"
echo "export SGLRP_PTXAS=$cuda/bin/ptxas"
echo "export SGLRP_CUOBJDUMP=$cuda/bin/cuobjdump"
