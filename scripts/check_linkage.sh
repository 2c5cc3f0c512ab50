#!/usr/bin/env bash
# Checks that a tch binary will find libtorch without LD_LIBRARY_PATH and will
# see CUDA on a GPU machine: libtorch_cuda among NEEDED, an rpath/runpath to
# torch's lib folder, and every NEEDED library resolvable.
set -euo pipefail
bin="${1:?usage: check_linkage.sh BINARY}"
dyn="$(readelf -d "$bin")"
fail() { echo "check_linkage: $bin: $*" >&2; exit 1; }
grep -q 'NEEDED.*\[libtorch_cuda.so\]' <<<"$dyn" || fail "libtorch_cuda.so is not a NEEDED library (CUDA would report unavailable)"
rpath="$(grep -E 'R(UN)?PATH' <<<"$dyn" | sed -E 's/.*\[(.*)\]/\1/')"
[[ -n "$rpath" ]] || fail "no RPATH/RUNPATH"
IFS=: read -ra dirs <<<"$rpath"
found=""
for d in "${dirs[@]}"; do [[ -e "$d/libtorch_cpu.so" ]] && found="$d"; done
[[ -n "$found" ]] || fail "no rpath entry holds libtorch_cpu.so (rpath: $rpath)"
if env -u LD_LIBRARY_PATH ldd "$bin" | grep -q 'not found'; then
    env -u LD_LIBRARY_PATH ldd "$bin" | grep 'not found' >&2
    fail "unresolved libraries without LD_LIBRARY_PATH"
fi
echo "check_linkage: $bin links libtorch_cuda and finds libtorch in $found: ok"
