#!/usr/bin/env bash
# Run dazzle inside ONE SLURM allocation: a Dask scheduler, one Dask worker per SLURM task
# (srun), then `dazzle run ... --scheduler <scheduler file>`; everything stops with the job.
#
#   sbatch deploy/slurm-batch.sh 'data/*_flt.fits' -o out/mosaic [more `dazzle run` options]
#   sbatch --ntasks=16 --cpus-per-task=2 --mem-per-cpu=4G deploy/slurm-batch.sh @inputs.lst -o m
#
# The #SBATCH lines below are defaults; options given to sbatch win.  Environment (sbatch
# passes the submitting shell's environment on):
#   DAZZLE_PYTHON   the Python that has dazzle installed (default: python3 on PATH); it must
#                   be reachable from every node (a shared file system)
#   DAZZLE_JOB_DIR  scheduler file and logs (default: $SLURM_SUBMIT_DIR/dazzle-job-$SLURM_JOB_ID)
#   DAZZLE_RUNNER   srun (default): scheduler in this batch shell, workers started with srun;
#                   jobqueue: dask-jobqueue's SLURMRunner (task 0 scheduler, task 1 runs dazzle,
#                   the other tasks are workers; needs --ntasks >= 3 and dask-jobqueue >= 0.9)
#   DAZZLE_INTERFACE network interface for scheduler and workers (e.g. ib0); default: any
#
#SBATCH --job-name=dazzle
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=2
#SBATCH --mem-per-cpu=4G
#SBATCH --time=02:00:00
#SBATCH --output=dazzle-%j.out
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: sbatch $0 INPUT... -o OUTPUT [dazzle run options]" >&2; exit 2; }
[ -n "${SLURM_JOB_ID:-}" ] || { echo "slurm-batch.sh: not inside a SLURM job (submit it with sbatch)" >&2; exit 2; }

PY="${DAZZLE_PYTHON:-python3}"
JOBDIR="${DAZZLE_JOB_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/dazzle-job-$SLURM_JOB_ID}"
mkdir -p "$JOBDIR"
SCHED_FILE="$JOBDIR/scheduler.json"
rm -f "$SCHED_FILE"
NTASKS="${SLURM_NTASKS:-1}"
CPUS="${SLURM_CPUS_PER_TASK:-1}"
IFACE=()
[ -n "${DAZZLE_INTERFACE:-}" ] && IFACE=(--interface "$DAZZLE_INTERFACE")

# memory per worker (one worker per task), in MiB as SLURM gives it
if [ -n "${SLURM_MEM_PER_CPU:-}" ]; then
    MEM="$((SLURM_MEM_PER_CPU * CPUS))MiB"
elif [ -n "${SLURM_MEM_PER_NODE:-}" ]; then
    per_node="${SLURM_NTASKS_PER_NODE:-$(( (NTASKS + ${SLURM_JOB_NUM_NODES:-1} - 1) / ${SLURM_JOB_NUM_NODES:-1} ))}"
    per_node="${per_node%%(*}"
    MEM="$((SLURM_MEM_PER_NODE / per_node))MiB"
else
    MEM=auto
fi

echo "dazzle job $SLURM_JOB_ID: $NTASKS worker(s) x $CPUS thread(s), $MEM each; files in $JOBDIR"

if [ "${DAZZLE_RUNNER:-srun}" = jobqueue ]; then
    # dask-jobqueue's runner: every task runs this Python; SLURMRunner gives each its role
    cat >"$JOBDIR/runner.py" <<'EOF'
import sys
from dask_jobqueue.slurm import SLURMRunner
from distributed import Client
from dazzle.cli import main

# every task runs this; only the client role (task 1) gets into the with-block's body (the
# scheduler and worker roles block in SLURMRunner() and exit when the client is done)
rc = 1
with SLURMRunner(scheduler_file=sys.argv[1]) as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=600)
        rc = main(["run", *sys.argv[2:], "--scheduler", client.scheduler.address])
sys.exit(rc)
EOF
    exec srun --ntasks="$NTASKS" --cpus-per-task="$CPUS" "$PY" "$JOBDIR/runner.py" "$SCHED_FILE" "$@"
fi

SCHED_PID=""
WORKERS_PID=""
cleanup() {
    local rc=$?
    # ask the scheduler to stop itself and its workers, then make sure
    if [ -s "$SCHED_FILE" ]; then
        timeout 30 "$PY" -c "from distributed import Client; Client(scheduler_file='$SCHED_FILE', timeout=10).shutdown()" \
            >/dev/null 2>&1 || true
    fi
    for pid in $WORKERS_PID $SCHED_PID; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT

# 1. the scheduler, in this batch shell (on the allocation's first node; it uses little CPU)
"$PY" -m distributed.cli.dask_scheduler --scheduler-file "$SCHED_FILE" --port 0 \
    --dashboard-address :0 "${IFACE[@]}" >"$JOBDIR/scheduler.log" 2>&1 &
SCHED_PID=$!
for _ in $(seq 300); do
    [ -s "$SCHED_FILE" ] && break
    kill -0 "$SCHED_PID" 2>/dev/null || { cat "$JOBDIR/scheduler.log" >&2; echo "scheduler died" >&2; exit 1; }
    sleep 0.2
done
[ -s "$SCHED_FILE" ] || { cat "$JOBDIR/scheduler.log" >&2; echo "no scheduler file after 60 s" >&2; exit 1; }

# 2. one worker per SLURM task (srun does not inherit --cpus-per-task from sbatch: give it)
srun --ntasks="$NTASKS" --cpus-per-task="$CPUS" --kill-on-bad-exit=0 \
    "$PY" -m distributed.cli.dask_worker --scheduler-file "$SCHED_FILE" --nthreads "$CPUS" \
    --nworkers 1 --memory-limit "$MEM" --local-directory "${TMPDIR:-/tmp}" "${IFACE[@]}" \
    >"$JOBDIR/workers.log" 2>&1 &
WORKERS_PID=$!
"$PY" - "$SCHED_FILE" "$NTASKS" <<'EOF'
import sys
from distributed import Client
with Client(scheduler_file=sys.argv[1], timeout=60) as c:
    c.wait_for_workers(int(sys.argv[2]), timeout=600)
    print(f"dazzle job: {len(c.nthreads())} worker(s) up; dashboard {c.dashboard_link}")
EOF

# 3. dazzle on that scheduler
"$PY" -m dazzle run "$@" --scheduler "$SCHED_FILE"
