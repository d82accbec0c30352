import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import data

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "tests" / "adversarial" / "attacks"
ADVERSARIAL_CONFIG = ROOT / "tests" / "adversarial" / "competition.yaml"  # the short limits of the attacks
SOFTMAX_MANIFEST = ("name: {name}\nclassify:\n  model: classifier.py:SoftmaxRegression\n  epochs: 1\n"
                    "  batch_size: 100\n  optimizer: SGD\n  optimizer_args: {{lr: {lr}}}\n")
TINY_AE_MANIFEST = "name: Tiny AE\nanomaly:\n  model: ae.py:AE\n  epochs: 1\n  batch_size: 100\n"
TINY_AE_CODE = """\
import chainer, chainer.functions as F, chainer.links as L
class AE(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.enc = L.Linear(784, {hidden})
            self.dec = L.Linear({hidden}, 784)
    def forward(self, x):
        return F.reshape(F.sigmoid(self.dec(F.relu(self.enc(x)))), x.shape)
"""


def copy_attack(name: str, dest: Path, host: dict | None = None) -> Path:
    """Copy the attack folder ``tests/adversarial/attacks/<name>`` to ``dest`` with every module of
    ``attacks/_shared/`` beside its code (the attacks import them: ``from hostile import ...``,
    ``from plain_model import Model``), and ``host`` as ``host.json`` when given (what hostile.py reads:
    the host paths, sockets and pids to go for). Every test grades or checks an attack through this
    copy, never in place."""
    dest = Path(dest)
    shutil.copytree(ATTACKS / name, dest, dirs_exist_ok=True)
    for module in sorted((ATTACKS / "_shared").glob("*.py")):
        shutil.copy(module, dest / module.name)
    if host is not None:
        (dest / "host.json").write_text(json.dumps(host))
    return dest


def softmax_submission(dest: Path, name: str = "Good neighbour", lr: float = 0.1) -> Path:
    """A good submission at ``dest``: the softmax-regression baseline, one epoch of SGD at ``lr``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "baselines" / "softmax-regression" / "classifier.py", dest / "classifier.py")
    (dest / "submission.yaml").write_text(SOFTMAX_MANIFEST.format(name=name, lr=lr))
    return dest


def small_quick_config(folder: Path) -> Path:
    """A course competition.yaml in ``folder`` that shrinks the quick profile to 2,000 training images."""
    cfg = Path(folder) / "competition.yaml"
    cfg.write_text("quick:\n  train_subset: 2000\n")
    return cfg


def run_cli(*args, cwd=None, timeout=600):
    """The harness command as its own process, 200 columns wide; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *map(str, args)], capture_output=True, text=True,
                          check=False, cwd=cwd, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="session")
def mnist():
    return data.load_or_prepare()


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "store.db")


@pytest.fixture
def make_submission(tmp_path):
    """Copy a baseline or the template into tmp_path/<name>, optionally rewriting files."""

    def make(source: str, name: str | None = None, files: dict | None = None, manifest: str | None = None) -> Path:
        src = ROOT / source
        dst = tmp_path / "subs" / (name or src.name)
        shutil.copytree(src, dst)
        for rel, text in (files or {}).items():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_text(text)
        if manifest is not None:
            (dst / "submission.yaml").write_text(manifest)
        return dst

    return make


@pytest.fixture
def harness_cli(capsys):
    """Run the harness command in-process; returns (exit code, stdout, stderr)."""
    from harness.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def read_results(path) -> dict:
    return json.loads(Path(path).read_text())
