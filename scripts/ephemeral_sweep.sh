#!/usr/bin/env bash
# Run a sweep on a machine that is lent for minutes and then wiped (a rented or shared GPU), in slices.
#
#   scripts/ephemeral_sweep.sh GRID SECONDS BUNDLE_IN_OR_- OUT_DIR [sweep-run options...]
#
# Each call: restores the finished runs of earlier calls from BUNDLE_IN (a results.tar.gz written by an
# earlier call; "-" for none), runs `repeatlab sweep run GRID` for at most SECONDS (then stops it with SIGTERM,
# which it handles like Ctrl-C), then writes into OUT_DIR:
#   results.tar.gz  every finished run without checkpoints or weights (summary, metrics, probes, config),
#                   plus results.parquet and grid.toml; feed it to the next call to resume
#   report.html     the report over what is finished so far
#   sweep.log       the sweep's output
# The prepared data and the mixtures are rebuilt on each call (they are deterministic), so a bundle stays
# small. Runs interrupted mid-training start again next call: pick SECONDS so that runs finish inside it.
# Uses `repeatlab` when installed, else `$PYTHON -m repeatlab.cli` (default python3) with src/ on PYTHONPATH.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n 2,15p "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
grid=$1 seconds=$2 bundle_in=$3 out=$4
shift 4
repo=$(cd "$(dirname "$0")/.." && pwd)
sweep=${SWEEP_DIR:-$repo/runs/ephemeral}

if command -v repeatlab >/dev/null 2>&1; then
    rl=(repeatlab)
else
    export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
    rl=("${PYTHON:-python3}" -m repeatlab.cli)
fi

mkdir -p "$sweep" "$out"
if [ "$bundle_in" != "-" ]; then
    [ -f "$bundle_in" ] || { echo "no bundle at $bundle_in (give - to start fresh)" >&2; exit 2; }
    tar -xzf "$bundle_in" -C "$sweep"
fi

status=0
timeout --signal=TERM --kill-after=60 "$seconds" "${rl[@]}" sweep run "$grid" --out "$sweep" "$@" \
    >"$out/sweep.log" 2>&1 || status=$?
case $status in
    0) echo "sweep finished" ;;
    124 | 130) echo "time slice over; run again with $out/results.tar.gz to go on" ;;
    *) echo "sweep exited with $status (see $out/sweep.log)" ;;
esac

"${rl[@]}" sweep collect "$sweep" >/dev/null 2>&1 || true
"${rl[@]}" report "$sweep" --out "$out/report.html" >>"$out/sweep.log" 2>&1 || echo "report failed (see $out/sweep.log)"

# Finished runs only (results.parquet says which): an unfinished run is useless without its checkpoint.
[ -f "$sweep/results.parquet" ] || { echo "no results.parquet in $sweep: nothing to bundle" >&2; exit 1; }
(
    cd "$sweep"
    mapfile -t finished < <("${PYTHON:-python3}" -c 'import pandas as pd
frame = pd.read_parquet("results.parquet")
print("\n".join("runs/" + r for r in frame.loc[frame["status"] == "done", "run_id"]))' 2>/dev/null || true)
    tar -czf "$out/results.tar.gz.tmp" --exclude=checkpoints --exclude='*.safetensors' --exclude='.lock' \
        --exclude=.heartbeat grid.toml results.parquet "${finished[@]}"
    mv "$out/results.tar.gz.tmp" "$out/results.tar.gz"
    echo "${#finished[@]} finished runs in $out/results.tar.gz"
)
exit $((status == 124 || status == 130 ? 0 : status))
