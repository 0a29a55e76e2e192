#!/usr/bin/env bash
# A single-node SLURM cluster on loopback from Debian's packages, for the SLURM workflow test
# (tests/workflow/test_slurm.py), which runs whenever `scontrol ping` answers.
#
#   bash .ci/slurm_cluster.sh start   # install if needed, write the config, start the daemons
#   bash .ci/slurm_cluster.sh stop    # stop every daemon this script started, remove its config
#
# Two partitions on the one node, `cpu` (default) and `gpu`, the names profiles/slurm uses, so
# the profile runs unchanged; the node has one fake GPU (gres backed by /dev/null) for the rules
# that ask for gpu=1. Accounting of finished jobs goes to a text file (jobcomp/filetxt): no
# database daemon is needed, and the test reads which jobs ran, in which partition, with which
# resources. Needs root (daemons, /etc/slurm, apt-get) and no systemd.
set -euo pipefail

STATE=/run/plmxai-slurm            # pids of what we started, and the marker of our config
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
JOBCOMP=/var/log/slurm/jobcomp.log

log() { echo "slurm_cluster: $*" >&2; }

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sbatch munged; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

write_config() {
    if [ -e "$CONF" ] && [ ! -e "$STATE/config" ]; then
        log "$CONF exists and was not written by this script: not touching a real cluster's config"
        exit 1
    fi
    local cpus mem
    cpus=$(nproc)
    # what the node offers; memory is not enforced (no cgroups), but jobs asking for more than
    # RealMemory would pend forever
    mem=$(awk '/MemTotal/ {print int($2 / 1024) - 512}' /proc/meminfo)
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE"
    cat >"$CONF" <<EOF
# written by plmxai .ci/slurm_cluster.sh: a single-node test cluster
ClusterName=plmxai-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP
JobAcctGatherType=jobacct_gather/none
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
    echo "NodeName=localhost Name=gpu File=/dev/null" >"$GRES"
    touch "$STATE/config"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "timed out waiting for $what"
            sinfo -N -l >&2 2>/dev/null || true
            scontrol show node localhost >&2 2>/dev/null || true
            tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log 2>/dev/null >&2 || true
            exit 1
        fi
        sleep 1
    done
}

node_idle() { [ "$(sinfo -h -n localhost -o %T 2>/dev/null | head -n 1)" = idle ]; }

# A node that registers before the controller has settled can come up down or drained
# ("Not responding", "Node unexpectedly rebooted"); resuming it is what an admin would do.
node_idle_or_resume() {
    node_idle && return 0
    case "$(sinfo -h -n localhost -o %T 2>/dev/null | head -n 1)" in
        down*|drain*|fail*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    return 1
}

start() {
    # a start that fails half-way stops what it started
    trap 'rc=$?; [ $rc -eq 0 ] || stop; exit $rc' EXIT
    install_packages
    write_config
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        /usr/sbin/mungekey --create --keyfile /etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    if ! munge -n >/dev/null 2>&1; then
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        wait_for 30 munged munge -n
        cp /run/munge/munged.pid "$STATE/munged.pid"
    fi
    /usr/sbin/slurmctld
    wait_for 60 slurmctld scontrol ping
    /usr/sbin/slurmd -N localhost
    wait_for 300 "the node to become idle" node_idle_or_resume
    log "up: $(sinfo -h -o '%P %D %T %c %G' | tr '\n' ';')"
}

stop() {
    scancel --user "$(id -un)" >/dev/null 2>&1 || true
    for daemon in slurmd slurmctld munged; do
        local pidfile="$STATE/$daemon.pid"
        [ -s "$pidfile" ] || continue
        local pid
        pid=$(cat "$pidfile")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    if [ -e "$STATE/config" ]; then
        rm -f "$CONF" "$GRES" "$STATE/config"
        # a later start must not resume the jobs of this one
        rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*
    fi
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
