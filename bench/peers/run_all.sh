#!/bin/sh
# `make peers`: nde and the Python peers on the same machine, in one run, with 2
# threads each, and ONE comparison table.
#
#   1. bench/.venv (setup_venv.sh: CPU torch, torchdiffeq, torchdyn, jax, diffrax;
#      skipped when up to date),
#   2. the peers' data and initial parameters dumped to bench/data (common.py
#      --dump), so that nde starts from the same numbers,
#   3. the nde workloads (bench/build/w*, built by bench/Makefile) with --data,
#   4. torchdiffeq, torchdyn, diffrax (jax.jit) on the same workloads,
#   5. compare.py: per workload and gradient mode, each library's median time per
#      training iteration, its ratio to nde, and the NFE side by side.
#
# Output: bench/results/peers-<UTC date>.txt (machine, command, raw BENCH/INFO
# lines, the table) and bench/results/peers-latest.txt (a copy).
#
# Environment: PEERS_ARGS  extra flags for every program (e.g. "--quick", or
#              "--iters 5 --warmup 1"); default: each program's own defaults.
#              PEERS_LIBS  which peers (default "torchdiffeq torchdyn diffrax").
#              PEERS_WORKLOADS  e.g. "W3,W4" (default all).
#              NDE_ONLY=1  skip the peers (nde lines only).
#              PEERS_VENV=DIR  use this existing venv as it is (no setup_venv.sh).
set -eu
# OpenMP threads sleep instead of spinning while they wait (for nde and torch
# alike): on a shared machine a spinning thread that loses its core turns every
# parallel region into a scheduler round trip (measured 10-90x slower per
# iteration under load for both libraries). Override by setting it yourself.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
here=$(cd "$(dirname "$0")" && pwd)
bench=$(cd "$here/.." && pwd)
root=$(cd "$bench/.." && pwd)
venv=${PEERS_VENV:-"$bench/.venv"}
py="$venv/bin/python"
args=${PEERS_ARGS:-}
libs=${PEERS_LIBS:-"torchdiffeq torchdyn diffrax"}
workloads=${PEERS_WORKLOADS:-W1,W2,W3,W4,W5}
results="$bench/results"
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out="$results/peers-$stamp.txt"
raw="$results/.raw-$stamp.txt"
start=$(date +%s)

log() { printf '%s\n' "$*" | tee -a "$out"; }

{
    echo "# make peers: nde vs torchdiffeq / torchdyn / diffrax (CPU, 2 threads each)"
    echo "# date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# command: make peers PEERS_ARGS='$args' PEERS_LIBS='$libs' PEERS_WORKLOADS='$workloads'"
    echo "# git: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "# cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    echo "# cc: $(${CC:-cc} --version | head -n 1); OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
} > "$out"
cat "$out"

if [ -z "${PEERS_VENV:-}" ]; then bash "$here/setup_venv.sh" 2>&1 | tail -n 3; fi
"$py" "$here/common.py" --dump "$bench/data" > /dev/null
log "# data: bench/data (common.py --dump)"

make -s -C "$bench" all
: > "$raw"
for w in $(echo "$workloads" | tr ',' ' '); do
    lw=$(echo "$w" | tr 'W' 'w')
    for src in "$bench"/"$lw"_*.c; do
        exe="$bench/build/$(basename "$src" .c)"
        [ -x "$exe" ] || continue
        log "# == $(basename "$exe") --data bench/data $args"
        # shellcheck disable=SC2086
        "$exe" --data "$bench/data" $args 2>&1 | tee -a "$raw" "$out" > /dev/null || log "# $(basename "$exe") failed"
    done
done
grep '^BENCH' "$raw" || true

if [ "${NDE_ONLY:-0}" != 1 ]; then
    for lib in $libs; do
        log "# == ${lib}_bench.py --workloads $workloads $args"
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 "$py" "$here/${lib}_bench.py" --workloads "$workloads" --threads 2 $args 2>&1 \
            | tee -a "$raw" "$out" | grep '^BENCH' || log "# ${lib} failed"
    done
fi

end=$(date +%s)
log ""
log "# wall time of this run: $(( (end - start) / 60 )) min $(( (end - start) % 60 )) s"
"$py" "$here/compare.py" --loss --csv "$results/peers-latest.csv" "$raw" | tee -a "$out"
grep -h "^BENCH lib=nde workload=W3" "$out" | sed "s/.*mode=\([a-z]*\).* gflops=\([0-9.]*\).*gemm_gflops=\([0-9.]*\) peak_gflops=\([0-9.]*\).*/W3 \1: \2 GFLOP\/s per iteration, \3 GFLOP\/s inside gemm, FMA peak \4 GFLOP\/s/" | tee -a "$out"
rm -f "$raw"
cp "$out" "$results/peers-latest.txt"
echo "peers: wrote $out"
