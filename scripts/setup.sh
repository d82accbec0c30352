#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for the harness: system packages, a virtual environment
# in .venv with pinned dependencies, and MNIST offline. Idempotent; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="bubblewrap ${HARNESS_EXTRA_APT:-}"
if command -v apt-get >/dev/null 2>&1; then
    missing=""
    for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Chainer 7.8.1 ships as a source archive whose setup imports pkg_resources: setuptools<81 first,
# then build without isolation (and keep setuptools<81 at run time, Chainer imports it).
.venv/bin/python -m pip install -q --upgrade pip "setuptools<81" wheel
.venv/bin/python -m pip install -q --no-build-isolation -e ".[test]"
# A plain `import chainer` (a student's script or notebook kernel) gets the harness's compat shims
# first: Chainer 7.8.1 does not import under setuptools 80's distutils shim otherwise.
.venv/bin/python -m harness.compat --install-pth >/dev/null
.venv/bin/python -c "import chainer" || { echo "setup: import chainer still fails in .venv" >&2; exit 3; }
.venv/bin/harness data >/dev/null
echo "setup done: $(.venv/bin/harness --version), $(.venv/bin/python --version)"
echo "the harness command: .venv/bin/harness (or run 'source .venv/bin/activate' once per shell, then: harness)"
