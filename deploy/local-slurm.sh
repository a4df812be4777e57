#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests (Debian bookworm, root, no systemd).
#
#   bash deploy/local-slurm.sh start  [WORKDIR]   install what is missing, start munged (if no
#                                                 munge daemon answers), slurmctld and slurmd,
#                                                 wait until the node is idle
#   bash deploy/local-slurm.sh stop   [WORKDIR]   cancel the cluster's jobs, stop ONLY the
#                                                 processes that `start` recorded
#   bash deploy/local-slurm.sh status [WORKDIR]   recorded pids, sinfo, squeue (exit 0 when up)
#
# WORKDIR (default $DAZZLE_SLURM_DIR, else /tmp/dazzle-slurm) holds the state, spool, logs and
# pid files, and `pids`, the processes this script started.  The configuration is written to
# /etc/slurm/slurm.conf (so sinfo, sbatch and dask-jobqueue find it without SLURM_CONF); a
# slurm.conf that was there before (not ours) is saved and put back by `stop`.
# Environment: DAZZLE_SLURM_TIMEOUT (seconds to wait for an idle node, default 60).
# Recipe and pitfalls: shared/reference/hpc-slurm.md.
set -euo pipefail

cmd="${1:-status}"
W="${2:-${DAZZLE_SLURM_DIR:-/tmp/dazzle-slurm}}"
TIMEOUT="${DAZZLE_SLURM_TIMEOUT:-60}"
CONF=/etc/slurm/slurm.conf
MARK="# written by dazzle deploy/local-slurm.sh"
PIDS="$W/pids"

say() { echo "local-slurm: $*" >&2; }

# alive PID: the process exists and is not a zombie (exited daemons linger as Z for 1-2 s)
alive() {
    local pid="$1" state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != "Z" ] && [ "$state" != "X" ]
}

# the name a recorded process should still have (guards against a recycled pid)
comm_is() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

node_state() { timeout 10 sinfo -h -o %t 2>/dev/null | head -n1 | tr -d ' *~#' || true; }

tails() {
    for f in "$W"/log/slurmctld.log "$W"/log/slurmd.log "$W"/log/slurmctld.out "$W"/log/slurmd.out \
             "$W"/log/munged.out /var/log/munge/munged.log; do
        [ -s "$f" ] || continue
        echo "----- tail $f -----" >&2
        tail -n 25 "$f" >&2
    done
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sinfo >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        say "missing ${missing[*]} and not root: install them (apt-get install slurmctld slurmd slurm-client munge)"
        exit 1
    fi
    say "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >"$W/log/apt.log" 2>&1; then
        apt-get -o DPkg::Lock::Timeout=300 update -q >>"$W/log/apt.log" 2>&1 || true
        apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}" >>"$W/log/apt.log" 2>&1 || {
            tail -n 30 "$W/log/apt.log" >&2; say "apt-get install failed"; exit 1; }
    fi
}

record() { echo "$1 $2" >>"$PIDS"; }   # pid name

start_munge() {
    if command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "a munge daemon already answers: using it (not ours, will not stop it)"
        return 0
    fi
    [ -s /etc/munge/munge.key ] || { say "creating /etc/munge/munge.key"; mungekey --create --keyfile=/etc/munge/munge.key; }
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    local pidfile=/run/munge/munged.pid
    rm -f "$pidfile"
    # munged insists on a log file owned by munge: it keeps Debian's /var/log/munge/munged.log
    runuser -u munge -- munged --pid-file="$pidfile" >"$W/log/munged.out" 2>&1 || {
        tails; say "munged did not start"; exit 1; }
    local i pid=""
    for i in $(seq 50); do
        pid=$(cat "$pidfile" 2>/dev/null || true)
        [ -n "$pid" ] && alive "$pid" && munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    if [ -z "$pid" ] || ! alive "$pid"; then tails; say "munged did not start"; exit 1; fi
    record "$pid" munged
}

write_conf() {
    local host node
    host=$(hostname -s)
    # the node line exactly as slurmd -C prints it (a hand-written CPUs= makes slurmd complain)
    node=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n1)
    [ -n "$node" ] || { say "slurmd -C printed no NodeName line"; exit 1; }
    mkdir -p /etc/slurm
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        [ -f "$CONF.dazzle-saved" ] || cp -p "$CONF" "$CONF.dazzle-saved"
        say "saved the existing $CONF as $CONF.dazzle-saved (put back by stop)"
    fi
    cat >"$CONF" <<EOF
$MARK (work folder $W)
ClusterName=dazzle
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_daemon() {   # name args...
    local name="$1"; shift
    rm -f "$W/$name.pid"   # a stale pid file would be read as the new daemon's
    setsid nohup "$name" -D "$@" >"$W/log/$name.out" 2>&1 </dev/null &
    local pid=$! i
    for i in $(seq 20); do
        alive "$pid" && comm_is "$pid" "$name" && break
        sleep 0.1
    done
    if ! alive "$pid"; then tails; say "$name exited at once"; stop_recorded; exit 1; fi
    record "$pid" "$name"
}

our_running() {   # true when every recorded slurm daemon is still alive
    [ -s "$PIDS" ] || return 1
    local pid name n=0
    while read -r pid name; do
        case "$name" in slurmctld|slurmd) alive "$pid" && comm_is "$pid" "$name" || return 1; n=$((n+1));; esac
    done <"$PIDS"
    [ "$n" -eq 2 ]
}

do_start() {
    [ "$(id -u)" = 0 ] || { say "must run as root"; exit 1; }
    mkdir -p "$W/log"
    if our_running; then
        local st; st=$(node_state)
        say "already running (node ${st:-unknown}); pids in $PIDS"
        [ "$st" = idle ] || [ "$st" = mix ] || [ "$st" = alloc ] && return 0
    fi
    [ -s "$PIDS" ] && stop_recorded
    : >"$PIDS"
    install_packages
    rm -rf "$W/state" "$W/spool"
    mkdir -p "$W/state" "$W/spool" "$W/log" "$W/jobs"
    local t0=$SECONDS
    start_munge
    write_conf
    start_daemon slurmctld -i
    start_daemon slurmd
    local st="" resumed=0
    while [ $((SECONDS - t0)) -lt "$TIMEOUT" ]; do
        st=$(node_state)
        [ "$st" = idle ] && break
        if [ "$resumed" = 0 ] && { [ "$st" = down ] || [ "$st" = drain ]; } && [ $((SECONDS - t0)) -gt 5 ]; then
            scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
            resumed=1
        fi
        if ! our_running; then break; fi
        sleep 0.5
    done
    if [ "$st" != idle ]; then
        tails
        say "node not idle after $((SECONDS - t0)) s (state: ${st:-none}); stopping what was started"
        stop_recorded
        exit 1
    fi
    if ! timeout 30 srun -N1 -n1 -t 1 hostname >/dev/null 2>"$W/log/srun-check.err"; then
        cat "$W/log/srun-check.err" >&2; tails; say "srun hostname failed"; stop_recorded; exit 1
    fi
    say "up in $((SECONDS - t0)) s: partition debug, node $(hostname -s) idle; work folder $W"
}

# stop every process recorded in $PIDS (TERM, then KILL after 10 s), last started first
stop_recorded() {
    [ -s "$PIDS" ] || return 0
    local lines pid name i
    mapfile -t lines < <(tac "$PIDS")
    for line in "${lines[@]}"; do
        read -r pid name <<<"$line"
        if alive "$pid" && comm_is "$pid" "$name"; then
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 100); do alive "$pid" || break; sleep 0.1; done
            if alive "$pid"; then say "$name ($pid) ignored TERM: KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
        fi
    done
    rm -f "$PIDS" "$W/slurmctld.pid" "$W/slurmd.pid"
}

# job processes of this node (slurmstepd and their children) outlive squeue by about a second
stepds() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] && alive "${p#/proc/}" && echo "${p#/proc/}"
    done
    return 0
}

do_stop() {
    if [ ! -s "$PIDS" ]; then say "nothing recorded in $PIDS: nothing to stop"; restore_conf; return 0; fi
    if our_running; then
        timeout 10 scancel --partition=debug >/dev/null 2>&1 || true
        local i
        for i in $(seq 40); do
            [ -z "$(timeout 5 squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
        for i in $(seq 40); do
            [ -z "$(stepds)" ] && break
            sleep 0.25
        done
    fi
    stop_recorded
    restore_conf
    say "stopped"
}

restore_conf() {
    if [ -f "$CONF.dazzle-saved" ]; then
        mv -f "$CONF.dazzle-saved" "$CONF"
        say "put back the saved $CONF"
    fi
}

do_status() {
    local rc=1 pid name
    if [ -s "$PIDS" ]; then
        while read -r pid name; do
            if alive "$pid"; then echo "$name pid $pid running"; else echo "$name pid $pid not running"; fi
        done <"$PIDS"
    else
        echo "no processes recorded in $PIDS"
    fi
    if command -v sinfo >/dev/null && our_running; then
        timeout 10 sinfo || true
        timeout 10 squeue || true
        case "$(node_state)" in idle|mix|alloc) rc=0;; esac
    fi
    return $rc
}

case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) echo "usage: $0 start|stop|status [WORKDIR]" >&2; exit 2 ;;
esac
