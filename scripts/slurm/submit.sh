#!/usr/bin/env bash
# Grades a class on a Slurm cluster: a job array (one shard of the submissions per task) and, after
# it, a merge job that brings every shard's results into the main store and renders the standings.
# See docs/cluster.md. Run it from a login node, in a clone of this repository set up with
# scripts/setup.sh on a filesystem the compute nodes share.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO/scripts/slurm"

usage() {
    cat <<EOF
usage: scripts/slurm/submit.sh [options] [SUBMISSION_DIR...]

Submits the grade array (scripts/slurm/grade-array.sbatch, tasks 1..N) and the merge job
(scripts/slurm/merge.sbatch, --dependency=afterany:<array>). Without folders it grades every
submissions/<id>/ that holds a submission.yaml (ids starting with _ or . are left out).

  -n, --shards N        array tasks; each grades sorted(paths)[K-1::N] (default 4, at most one per
                        submission; env HARNESS_SLURM_SHARDS)
      --gpu             one GPU per task: --gres=gpu:1, graded with --device @cupy:<that GPU>
                        (env HARNESS_SLURM_GPU=1)
      --quick           grade with the quick profile (same as --grade-args --quick)
  -a, --grade-args "A"  more 'harness grade' options, e.g. "--track classify --jobs 2"
      --db PATH         the main store the merge writes (default \$HARNESS_DB, else
                        leaderboard/leaderboard.db in the repository)
      --run-dir DIR     shard results, logs and standings; must be seen by every node
                        (default leaderboard/slurm/<date>-<time> in the repository)
      --array LIST      submit only these shards of an earlier --run-dir (e.g. 2,5): reruns
                        shards that failed; the merge job follows them
      --merge-only      submit only the merge job of an earlier --run-dir
  -p, --partition P     Slurm partition
  -t, --time T          time limit of each task (sbatch --time)
  -c, --cpus C          CPUs per task (default 2)
      --mem M           memory per task (sbatch --mem, e.g. 8G)
      --sbatch-args "A" more sbatch options for both jobs, e.g. "--account=dl101 --qos=short"
      --harness PATH    the harness executable (default <repo>/.venv/bin/harness)
      --dry-run         print the sbatch commands and submit nothing
  -h, --help            this text

Prints the run folder and the job ids, and writes them to <run-dir>/jobs.env.
EOF
}

die() { echo "submit.sh: $*" >&2; exit 2; }

SHARDS=${HARNESS_SLURM_SHARDS:-4}
GPU=${HARNESS_SLURM_GPU:-0}
GRADE_ARGS=""
STORE=${HARNESS_DB:-}
RUN_DIR=""
ARRAY=""
MERGE_ONLY=0
CPUS=2
SB_ARGS=()
SB_EXTRA=""
HARNESS_EXE="$REPO/.venv/bin/harness"
DRY=0
shards_given=0
paths=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n|--shards) SHARDS=${2:?}; shards_given=1; shift 2 ;;
        --gpu) GPU=1; shift ;;
        --quick) GRADE_ARGS="$GRADE_ARGS --quick"; shift ;;
        -a|--grade-args) GRADE_ARGS="$GRADE_ARGS ${2?}"; shift 2 ;;
        --db) STORE=${2:?}; shift 2 ;;
        --run-dir) RUN_DIR=${2:?}; shift 2 ;;
        --array) ARRAY=${2:?}; shift 2 ;;
        --merge-only) MERGE_ONLY=1; shift ;;
        -p|--partition) SB_ARGS+=(--partition "${2:?}"); shift 2 ;;
        -t|--time) SB_ARGS+=(--time "${2:?}"); shift 2 ;;
        -c|--cpus) CPUS=${2:?}; shift 2 ;;
        --mem) SB_ARGS+=(--mem "${2:?}"); shift 2 ;;
        --sbatch-args) SB_EXTRA="$SB_EXTRA ${2?}"; shift 2 ;;
        --harness) HARNESS_EXE=${2:?}; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; paths+=("$@"); break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) paths+=("$1"); shift ;;
    esac
done
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "--shards: expected a whole number >= 1, got '$SHARDS'"
[[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "--cpus: expected a whole number >= 1, got '$CPUS'"
[ -z "$ARRAY" ] || [[ "$ARRAY" =~ ^[0-9,-]+$ ]] || die "--array: expected shard numbers like 2,5 or 1-3, got '$ARRAY'"
[ -x "$HARNESS_EXE" ] || die "no harness at $HARNESS_EXE (run scripts/setup.sh, or pass --harness)"
HARNESS_EXE=$(readlink -f "$HARNESS_EXE")
command -v sbatch >/dev/null || [ "$DRY" = 1 ] || die "sbatch not found: run this on a Slurm login node"

if [ -n "$ARRAY" ] || [ "$MERGE_ONLY" = 1 ]; then
    # A rerun: everything that defines the shards comes from the earlier run, so that shard K is
    # the same set of submissions as before.
    [ -n "$RUN_DIR" ] || die "--array and --merge-only need the --run-dir of the earlier run"
    [ -f "$RUN_DIR/run.env" ] || die "$RUN_DIR/run.env not found: not a run folder of submit.sh"
    [ "${#paths[@]}" = 0 ] || die "--array/--merge-only grade the earlier run's submissions: give no folders"
    prev_shards=$SHARDS
    # shellcheck disable=SC1091
    . "$RUN_DIR/run.env"
    SHARDS=$HARNESS_SHARDS GRADE_ARGS=$HARNESS_GRADE_ARGS GPU=$HARNESS_GPU STORE=$HARNESS_STORE
    [ "$shards_given" = 0 ] || [ "$prev_shards" = "$SHARDS" ] || die "this run has $SHARDS shards, not $prev_shards"
    RUN_DIR=$(readlink -f "$RUN_DIR")
else
    if [ "${#paths[@]}" = 0 ]; then
        for d in "$REPO"/submissions/*/; do
            case "$(basename "$d")" in _*|.*) continue ;; esac
            [ -f "$d/submission.yaml" ] && paths+=("${d%/}")
        done
    fi
    [ "${#paths[@]}" -gt 0 ] || die "no submissions to grade"
    abs=()
    for p in "${paths[@]}"; do
        [ -d "$p" ] || die "$p: not a folder (expected a submission folder holding submission.yaml)"
        abs+=("$(readlink -f "$p")")
    done
    [ "$SHARDS" -le "${#abs[@]}" ] || SHARDS=${#abs[@]}
    RUN_DIR=${RUN_DIR:-$REPO/leaderboard/slurm/$(date +%Y%m%d-%H%M%S)}
    [ ! -e "$RUN_DIR/paths.txt" ] || die "$RUN_DIR already holds a run (use a new --run-dir, or --array/--merge-only)"
    mkdir -p "$RUN_DIR/logs" "$RUN_DIR/shards"
    RUN_DIR=$(readlink -f "$RUN_DIR")
    STORE=${STORE:-$REPO/leaderboard/leaderboard.db}
    case "$STORE" in /*) ;; *) STORE="$PWD/$STORE" ;; esac
    printf '%s\n' "${abs[@]}" > "$RUN_DIR/paths.txt"
    {
        printf 'HARNESS_SHARDS=%q\n' "$SHARDS"
        printf 'HARNESS_GRADE_ARGS=%q\n' "${GRADE_ARGS# }"
        printf 'HARNESS_GPU=%q\n' "$GPU"
        printf 'HARNESS_STORE=%q\n' "$STORE"
    } > "$RUN_DIR/run.env"
    GRADE_ARGS=${GRADE_ARGS# }
fi

export HARNESS_BIN="$HARNESS_EXE" HARNESS_REPO="$REPO" HARNESS_RUN_DIR="$RUN_DIR" HARNESS_SHARDS="$SHARDS"
export HARNESS_GRADE_ARGS="$GRADE_ARGS" HARNESS_GPU="$GPU" HARNESS_STORE="$STORE"

# shellcheck disable=SC2206  # --sbatch-args is a list of options
common=(--parsable --chdir "$REPO" "${SB_ARGS[@]}" $SB_EXTRA)
grade_cmd=(sbatch "${common[@]}" --array "${ARRAY:-1-$SHARDS}" --cpus-per-task "$CPUS"
           --output "$RUN_DIR/logs/grade-%A_%a.out")
[ "$GPU" != 1 ] || grade_cmd+=(--gres gpu:1)
grade_cmd+=("$HERE/grade-array.sbatch")
merge_cmd=(sbatch "${common[@]}" --output "$RUN_DIR/logs/merge-%j.out")

if [ "$DRY" = 1 ]; then
    [ "$MERGE_ONLY" = 1 ] || printf '%q ' "${grade_cmd[@]}"; echo
    printf '%q ' "${merge_cmd[@]}" --dependency "afterany:<array job id>" "$HERE/merge.sbatch"; echo
    exit 0
fi

array_id=""
if [ "$MERGE_ONLY" = 0 ]; then
    out=$("${grade_cmd[@]}")
    array_id=${out%%;*}
    merge_cmd+=(--dependency "afterany:$array_id" --kill-on-invalid-dep=no)
fi
out=$("${merge_cmd[@]}" "$HERE/merge.sbatch")
merge_id=${out%%;*}
printf 'ARRAY_JOB_ID=%s\nMERGE_JOB_ID=%s\n' "$array_id" "$merge_id" > "$RUN_DIR/jobs.env"

gpu_note=""
[ "$GPU" != 1 ] || gpu_note=", one GPU per task"
echo "run folder: $RUN_DIR ($(wc -l < "$RUN_DIR/paths.txt") submissions, $SHARDS shards${GRADE_ARGS:+, grade args: $GRADE_ARGS}$gpu_note)"
[ -z "$array_id" ] || echo "grade array job: $array_id (tasks ${ARRAY:-1-$SHARDS}), logs $RUN_DIR/logs/grade-${array_id}_<K>.out"
echo "merge job: $merge_id${array_id:+ (after the array)}, into $STORE; standings $RUN_DIR/leaderboard.md"
echo "follow with: squeue -j ${array_id:+$array_id,}$merge_id"
