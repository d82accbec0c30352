#!/usr/bin/env bash
# Proves the Slurm scripts on this one machine: a private Slurm cluster of one node (Debian's
# slurm-wlm 22.05 and munge, started here and stopped at the end), a class of small submissions
# graded as a job array through scripts/slurm/submit.sh, one array task killed mid-shard and
# requeued, then the merged store checked: every submission has exactly one run, none lost, none
# duplicated, and a second merge adds nothing.
#
#   sudo bash scripts/slurm/selftest.sh        # root: it installs packages and starts daemons
#
# Needs scripts/setup.sh to have run (.venv, bubblewrap, MNIST). Takes about two minutes on a
# 2-core machine (docs/cluster.md). Touches no system configuration: the key, the sockets, the
# slurm.conf, the state and the logs all live in one temporary folder, removed at the end
# (SELFTEST_KEEP=1 keeps it). The last line is "<N> graded, <L> lost, <D> duplicated"; the exit
# status is 0 only when every submission was graded exactly once and the requeue was proven.
#
# Settings (environment): SELFTEST_SUBMISSIONS (6), SELFTEST_SHARDS (3), SELFTEST_TIMEOUT
# (seconds for the grade and merge jobs, 420), SELFTEST_SLEEP (seconds the slow submission's
# training loop waits, so that its shard can be killed mid-run: 15).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HARNESS="$REPO/.venv/bin/harness"
PY="$REPO/.venv/bin/python"
NSUB=${SELFTEST_SUBMISSIONS:-6}
SHARDS=${SELFTEST_SHARDS:-3}
TIMEOUT=${SELFTEST_TIMEOUT:-420}
SLEEP=${SELFTEST_SLEEP:-15}
T0=$SECONDS

say() { printf '[selftest %4ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs slurm-wlm and munge and starts their daemons)"
[ -x "$HARNESS" ] || die "no $HARNESS: run scripts/setup.sh first"
if [ "$SHARDS" -lt 2 ] || [ "$NSUB" -lt $((SHARDS + 2)) ]; then
    die "need SELFTEST_SHARDS >= 2 and SELFTEST_SUBMISSIONS >= shards + 2"
fi
export HOME=${HOME:-/root}

# ----- packages (Debian's own: Slurm 22.05 on Debian 12)
missing=""
for p in slurm-wlm munge; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    say "installing$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086  # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
for b in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo; do
    command -v "$b" >/dev/null || die "$b not found after installing slurm-wlm and munge"
done

# ----- one temporary folder for everything, and a trap that stops what this script started
T=$(mktemp -d /tmp/harness-slurm-selftest.XXXXXX)
chmod 755 "$T"   # munged wants every folder above its socket searchable
mkdir -m 700 "$T/munge-key"
mkdir -m 755 "$T/munge-run"
mkdir -p "$T/slurm/state" "$T/slurm/spool" "$T/slurm/log" "$T/subs" "$T/store"
CTLD_PID="" SLURMD_PID="" MUNGED_PID="" ARRAY_ID="" MERGE_ID=""

cleanup() {
    local rc=$?
    set +e
    if [ -n "$CTLD_PID" ]; then
        for j in $ARRAY_ID $MERGE_ID; do scancel "$j" 2>/dev/null; done
        # give the job steps a moment to end before their slurmd goes
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    for pid in $SLURMD_PID $CTLD_PID $MUNGED_PID; do
        kill "$pid" 2>/dev/null
    done
    for pid in $SLURMD_PID $CTLD_PID $MUNGED_PID; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$pid" 2>/dev/null
    done
    if [ "${SELFTEST_KEEP:-0}" = 1 ]; then
        echo "kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----- munge: a private key and daemon on a private socket
say "starting munged (private key and socket in $T)"
mungekey -c -k "$T/munge-key/munge.key" -b 1024
chmod 400 "$T/munge-key/munge.key"
SOCK="$T/munge-run/munge.socket"
munged -S "$SOCK" --key-file="$T/munge-key/munge.key" --pid-file="$T/munge-run/munged.pid" \
    --log-file="$T/munge-run/munged.log" --seed-file="$T/munge-run/munged.seed"
MUNGED_PID=$(cat "$T/munge-run/munged.pid")
munge -S "$SOCK" -n | unmunge -S "$SOCK" >/dev/null || die "munge does not round-trip a credential"

# ----- a one-node Slurm: this machine's real CPUs and memory, ports nobody uses
HOST=$(hostname -s)
read -r CTLD_PORT SLURMD_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
NODE_LINE=$(slurmd -C | head -1)   # NodeName=... CPUs=... Boards=... RealMemory=...
NODE_LINE=${NODE_LINE/NodeName=* CPUs=/NodeName=$HOST NodeAddr=127.0.0.1 CPUs=}
CONF="$T/slurm/slurm.conf"
cat > "$CONF" <<EOF
# written by scripts/slurm/selftest.sh: a private one-node cluster, removed at the end
ClusterName=harness-selftest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$T/slurm/state
SlurmdSpoolDir=$T/slurm/spool
SlurmctldPidFile=$T/slurm/slurmctld.pid
SlurmdPidFile=$T/slurm/slurmd.pid
SlurmctldLogFile=$T/slurm/log/slurmctld.log
SlurmdLogFile=$T/slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=5
$NODE_LINE State=UNKNOWN
PartitionName=selftest Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$CONF"
say "starting slurmctld and slurmd ($NODE_LINE; ports $CTLD_PORT, $SLURMD_PORT)"
slurmctld -D -c -f "$CONF" > "$T/slurm/log/slurmctld.out" 2>&1 &
CTLD_PID=$!
for _ in $(seq 1 30); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 1; done
scontrol ping | grep -q UP || { cat "$T/slurm/log/slurmctld.log" >&2; die "slurmctld did not come up"; }
slurmd -D -f "$CONF" -N "$HOST" > "$T/slurm/log/slurmd.out" 2>&1 &
SLURMD_PID=$!
state=""
for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
[ "$state" = idle ] || { tail -20 "$T/slurm/log/slurmd.log" >&2; die "node $HOST is '$state', not idle"; }
say "node $HOST idle: $(sinfo -h -o '%P %D %c CPUs %m MB')"

# ----- the class: copies of the softmax-regression baseline under different names; one of them
# waits SLEEP seconds after training (its own training loop), so that its shard can be killed
# while it is mid-run: shard 2 grades sub-02 and then the slow one.
SLOW=$((2 + SHARDS))
ids=()
for i in $(seq 1 "$NSUB"); do
    id=$(printf 'sub-%02d' "$i")
    ids+=("$id")
    cp -r "$REPO/baselines/softmax-regression" "$T/subs/$id"
    sed -i "s/^name:.*/name: \"Selftest $id (softmax regression)\"/" "$T/subs/$id/submission.yaml"
done
slow_id=$(printf 'sub-%02d' "$SLOW")
echo "  train: train.py:fit" >> "$T/subs/$slow_id/submission.yaml"
cat > "$T/subs/$slow_id/train.py" <<EOF
import time

import chainer.functions as F


def fit(model, data, settings):
    x, t = data
    opt = settings.make_optimizer(model)
    bs = settings.batch_size
    for start in range(0, len(x) - bs + 1, bs):
        loss = F.softmax_cross_entropy(model(x[start:start + bs]), t[start:start + bs])
        model.cleargrads()
        loss.backward()
        opt.update()
    settings.report(1, loss=float(loss.array))
    time.sleep($SLEEP)  # the selftest kills this shard meanwhile
EOF

# ----- submit through the wrapper, as an instructor would
RUN="$T/run"
STORE="$T/store/leaderboard.db"
say "submitting $NSUB submissions as $SHARDS shards (--quick --track classify)"
bash "$REPO/scripts/slurm/submit.sh" --shards "$SHARDS" --cpus 1 --quick --grade-args "--track classify" \
    --db "$STORE" --run-dir "$RUN" "$T"/subs/sub-*
# shellcheck disable=SC1091
. "$RUN/jobs.env"
ARRAY_ID=$ARRAY_JOB_ID MERGE_ID=$MERGE_JOB_ID

job_state() { scontrol show job "$1" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
count_runs() {  # runs in a store (0 if it does not exist yet)
    "$PY" -c 'import sqlite3,sys,os; p=sys.argv[1]; print(sqlite3.connect(f"file:{p}?mode=ro", uri=True).execute("select count(*) from runs").fetchone()[0] if os.path.exists(p) else 0)' "$1" 2>/dev/null || echo 0
}

# ----- requeue: kill shard 2 once it has stored its first run (sub-02) and is inside the slow one
TASK="${ARRAY_ID}_2"
LOG2="$RUN/logs/grade-${ARRAY_ID}_2.out"
scratch="" killed_uid=""
deadline=$((SECONDS + 120))
while [ "$SECONDS" -lt "$deadline" ]; do
    scratch=$(grep -o 'scratch [^ ]*' "$LOG2" 2>/dev/null | tail -1 | cut -d' ' -f2 || true)
    if [ -n "$scratch" ] && [ "$(count_runs "$scratch/leaderboard.db")" -ge 1 ]; then
        killed_uid=$("$PY" -c 'import sqlite3,sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("select run_uid from runs").fetchone()[0])' "$scratch/leaderboard.db")
        break
    fi
    [ -f "$RUN/shards/shard-2.json" ] && die "shard 2 finished before it could be killed (raise SELFTEST_SLEEP)"
    sleep 0.3
done
[ -n "$killed_uid" ] || die "shard 2 stored no run within 120 s (see $LOG2)"
say "shard 2 ($TASK) has graded sub-02 (run $killed_uid) and is grading $slow_id: requeueing it"
scontrol requeue "$TASK"
sleep 1
# A requeued job waits for a begin time; let it start again at once.
scontrol update JobId="$TASK" StartTime=now 2>/dev/null || true

# ----- wait for the merge job
deadline=$((SECONDS + TIMEOUT))
mstate=""
while [ "$SECONDS" -lt "$deadline" ]; do
    mstate=$(job_state "$MERGE_ID")
    case "$mstate" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
    sleep 2
done
say "merge job $MERGE_ID: ${mstate:-unknown}"
problems=()
case "$mstate" in COMPLETED) ;; *) problems+=("merge job ended ${mstate:-nowhere} within ${TIMEOUT}s") ;; esac
for k in $(seq 1 "$SHARDS"); do
    s=$(job_state "${ARRAY_ID}_$k")
    say "  shard $k: ${s:-?}, $(grep -c '' "$RUN/logs/grade-${ARRAY_ID}_$k.out" 2>/dev/null || echo 0) log lines"
    [ "$s" = COMPLETED ] || problems+=("shard $k ended $s")
done
cat "$RUN"/logs/merge-*.out 2>/dev/null | sed 's/^/  merge| /' | tail -8
grep -q 'attempt 2): done' "$LOG2" || problems+=("shard 2 has no finished second attempt in its log")
grep -q 'attempt 1): signalled' "$LOG2" || problems+=("shard 2's first attempt was not the one killed")
[ -s "$RUN/leaderboard.md" ] || problems+=("no leaderboard.md rendered")

# ----- the checks, on the merged store; then a second merge must add nothing
before=$(count_runs "$STORE")
"$HARNESS" merge "$RUN"/shards/shard-*.json --db "$STORE" > "$T/merge-again.txt" 2>&1 || problems+=("second merge failed")
after=$(count_runs "$STORE")
[ "$before" = "$after" ] || problems+=("a second merge changed the store from $before to $after runs")
say "second merge: $before runs before, $after after"

graded=0 lost=$NSUB dup=0 bad=1
read -r graded lost dup bad < <("$PY" - "$STORE" "$killed_uid" "${ids[@]}" <<'EOF'
import json, os, sqlite3, sys
store, killed, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
db = sqlite3.connect(store)
rows = db.execute("SELECT submission_id, track, profile, status, run_uid, artifacts, message FROM runs "
                  "WHERE kind = 'submission'").fetchall()
store_dir = os.path.dirname(os.path.abspath(store))
graded = lost = dup = bad = 0
for sid in ids:
    mine = [r for r in rows if r[0] == sid]
    if not mine:
        lost += 1
        print(f"  LOST {sid}", file=sys.stderr)
    elif len(mine) > 1:
        dup += 1
        print(f"  DUPLICATED {sid}: {len(mine)} runs {[r[1:4] for r in mine]}", file=sys.stderr)
    else:
        _, track, profile, status, uid, arts, message = mine[0]
        arts = json.loads(arts or "{}")
        # the artifacts travelled with the shard results into the store's own folder
        arts_ok = bool(arts) and all(os.path.isfile(p) and os.path.abspath(p).startswith(store_dir + os.sep)
                                     for p in arts.values())
        ok = (track, profile, status) == ("classify", "quick", "OK") and arts_ok
        graded += ok
        bad += not ok
        print(f"  {sid}: {track} {profile} {status} run {uid}, artifacts {sorted(arts)}"
              f"{'' if arts_ok else ' NOT IN THE STORE FOLDER: ' + str(arts)}", file=sys.stderr)
        if status != "OK":
            print("    " + message[-1500:].replace("\n", "\n    "), file=sys.stderr)
strangers = sorted({r[0] for r in rows} - set(ids))
if strangers:
    print(f"  runs of submissions never submitted: {strangers}", file=sys.stderr)
    bad += len(strangers)
if any(r[4] == killed for r in rows):
    print(f"  the killed attempt's run {killed} reached the store", file=sys.stderr)
    dup += 1
print(graded, lost, dup, bad)
EOF
) || problems+=("could not read the merged store $STORE")
[ "$bad" = 0 ] || problems+=("$bad runs with another track, profile or status than classify/quick/OK, or without their artifacts")
for p in "${problems[@]}"; do say "problem: $p"; done
say "done in $((SECONDS - T0)) s; the store holds $after runs"
echo "$graded graded, $lost lost, $dup duplicated"
[ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "${#problems[@]}" = 0 ] && [ "$graded" = "$NSUB" ]
