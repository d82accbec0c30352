"""``submission.yaml``: parsed and validated without importing any student code.

Every problem becomes one line that names the file, the key, what was expected and what was
found; :class:`ManifestError` carries all of them at once so a student fixes everything in one go.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from harness import tracks

MANIFEST_NAME = "submission.yaml"
MAX_MANIFEST_BYTES = 64 << 10   # a manifest is a few hundred bytes; read no more than this
MAX_NAME_CHARS = 200            # the author's name, as shown on leaderboards
SHOW_CHARS = 120                # a student's value quoted in a problem is cut to this many characters
SUBMISSION_ROOTS = ("submissions", "baselines")

# role keys naming classes, per track (SPEC, Submission contract)
SETTING_KEYS = ("epochs", "batch_size", "optimizer", "optimizer_args", "weights", "train")
CLASS_REF = re.compile(r"^(?P<file>[A-Za-z0-9_./-]+\.(?:py|ipynb)):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")
ARGS_SUFFIX = "_args"  # ``<role>_args`` beside a class key: its constructor's keyword arguments
OPTIMIZERS = (
    "AdaDelta", "AdaGrad", "Adam", "AdamW", "AMSGrad", "AdaBound", "AMSBound", "CorrectedMomentumSGD",
    "MomentumSGD", "MSVAG", "NesterovAG", "RMSprop", "RMSpropGraves", "SGD", "SMORMS3",
)


def _show(value, quote: bool = True) -> str:
    """A student's value for a problem line: its repr (or str), cut to SHOW_CHARS characters."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS] + f"... ({len(text)} characters)"


class AliasRefused(yaml.composer.ComposerError):
    pass


class NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors (&a) and aliases (*a): a few hundred bytes of nested
    aliases (a "billion laughs") would otherwise expand to gigabytes in the grading process."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise AliasRefused(
                None, None, f"anchors (&name) and aliases (*name) are not allowed in {MANIFEST_NAME}; "
                            f"write each value out in full", event.start_mark)
        return super().compose_node(parent, index)


def parse_yaml(path: Path, max_bytes: int = MAX_MANIFEST_BYTES):
    """The YAML document in ``path``: a regular file of at most ``max_bytes``, UTF-8, no anchors or
    aliases, nesting bounded. Raises ManifestError with one line naming the file and the problem.
    ``harness check`` and ``harness grade`` both read manifests through here."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ManifestError([f"{path}: cannot be opened ({exc.strerror})"])
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError([f"{path}: not a regular file"])
        if st.st_size > max_bytes:
            raise ManifestError([f"{path}: {st.st_size:,} bytes, more than the {max_bytes:,} allowed "
                                 f"(a manifest names classes and settings; keep data out of it)"])
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ManifestError([f"{path}: more than the {max_bytes:,} bytes allowed"])
    try:
        return yaml.load(data.decode("utf-8"), Loader=NoAliasLoader)
    except UnicodeDecodeError:
        raise ManifestError([f"{path}: not UTF-8 text"])
    except RecursionError:
        raise ManifestError([f"{path}: nested too deeply to be a manifest (expected name: and track sections)"])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(exc, AliasRefused):
            raise ManifestError([f"{path}{at}: {exc.problem}"])
        raise ManifestError([f"{path}: not valid YAML{at}: {_show(getattr(exc, 'problem', None) or exc, quote=False)}"])


def submission_root(path: str | os.PathLike) -> Path | None:
    """The submissions root of a submission folder: its nearest ancestor named ``submissions`` (or
    ``baselines``), or None when it has none."""
    resolved = Path(path).resolve()
    return next((p for p in resolved.parents if p.name in SUBMISSION_ROOTS), None)


def submission_id(path: str | os.PathLike) -> str:
    """A submission's id: its path relative to the submissions root (``submissions/team2/good`` ->
    ``team2/good``); the folder's name for a folder outside any submissions root."""
    resolved = Path(path).resolve()
    root = submission_root(resolved)
    return resolved.relative_to(root).as_posix() if root else resolved.name


def same_submission(stored_path: str, path: str | os.PathLike) -> bool:
    """Whether a run stored from ``stored_path`` was graded from the folder ``path``: the same resolved
    folder, or (a clone or CI checkout of the course) the same path relative to a submissions root."""
    here = Path(path).resolve()
    there = Path(stored_path)
    if (there if there.is_absolute() else there.resolve()) == here:
        return True
    parts = there.parts
    roots = [i for i, part in enumerate(parts[:-1]) if part in SUBMISSION_ROOTS]
    return bool(roots) and submission_root(here) is not None and \
        "/".join(parts[roots[-1] + 1:]) == submission_id(here)


class ManifestError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class ClassRef:
    file: str
    name: str

    def __str__(self) -> str:
        return f"{self.file}:{self.name}"


@dataclass
class TrackSpec:
    track: str
    classes: dict[str, ClassRef]
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    train: ClassRef | None = None
    class_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> ``<role>_args``


@dataclass
class Manifest:
    path: Path
    name: str
    tracks: dict[str, TrackSpec]


def _inside(root: Path, rel: str) -> bool:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        return False
    return (root / rel).resolve().is_relative_to(root.resolve())


def _positive_int(value, where: str, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(f"{where}: expected a positive integer, found {_show(value)}")
        return None
    return value


def _class_ref(value, where: str, root: Path, problems: list[str]) -> ClassRef | None:
    if not isinstance(value, str) or not CLASS_REF.match(value.strip()):
        problems.append(f"{where}: expected 'file.py:Name' or 'notebook.ipynb:Name' (e.g. 'model.py:Classifier'), "
                        f"found {_show(value)}")
        return None
    m = CLASS_REF.match(value.strip())
    if not _inside(root, m["file"]):
        problems.append(f"{where}: '{m['file']}' must be a path inside the submission folder")
        return None
    if not (root / m["file"]).is_file():
        problems.append(f"{where}: file '{m['file']}' not found in {root}")
        return None
    return ClassRef(m["file"], m["name"])


def _plain_value(v) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, list):
        return all(_plain_value(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain_value(x) for k, x in v.items())
    return False


def _class_args(value, where: str, problems: list[str]) -> dict | None:
    """``<role>_args``: keyword arguments for the class's constructor (numbers, text, booleans, lists)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.isidentifier() for k in value):
        problems.append(f"{where}: expected a mapping of constructor arguments like {{n_units: 1000, n_out: 10}}, "
                        f"found {_show(value)}")
        return None
    bad = [k for k, v in value.items() if not _plain_value(v) or (isinstance(v, float) and v != v)]
    if bad:
        problems.append(f"{where}: {', '.join(bad)}: expected numbers, text, booleans or lists as values, "
                        f"found {', '.join(_show(value[k]) for k in bad)}")
        return None
    return dict(value)


def _track(track: str, section, where: str, root: Path, problems: list[str]) -> TrackSpec | None:
    if not isinstance(section, dict):
        problems.append(f"{where}: expected a mapping of settings, found {type(section).__name__}")
        return None
    roles = tracks.get(track).roles
    known = roles + tuple(role + ARGS_SUFFIX for role in roles) + SETTING_KEYS
    for key in section:
        if key not in known:
            problems.append(f"{where}.{_show(key, quote=False)}: unknown key (known keys for {track}: {', '.join(known)})")
    classes = {}
    for role in tracks.get(track).roles:
        if role not in section:
            problems.append(f"{where}.{role}: missing (expected 'file.py:Class')")
            continue
        ref = _class_ref(section[role], f"{where}.{role}", root, problems)
        if ref:
            classes[role] = ref
    spec = TrackSpec(track, classes)
    for role in roles:
        key = role + ARGS_SUFFIX
        if key in section:
            args = _class_args(section[key], f"{where}.{key}", problems)
            if args is not None:
                spec.class_args[role] = args
    if "epochs" in section:
        spec.epochs = _positive_int(section["epochs"], f"{where}.epochs", problems)
    if "batch_size" in section:
        spec.batch_size = _positive_int(section["batch_size"], f"{where}.batch_size", problems)
    if "optimizer" in section:
        opt = section["optimizer"]
        if opt not in OPTIMIZERS:
            problems.append(f"{where}.optimizer: expected a class in chainer.optimizers "
                            f"({', '.join(OPTIMIZERS)}), found {_show(opt)}")
        else:
            spec.optimizer = opt
    if "optimizer_args" in section:
        args = section["optimizer_args"]
        if args is None:
            args = {}
        if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
            problems.append(f"{where}.optimizer_args: expected a mapping like {{alpha: 0.001}}, found {_show(args)}")
        elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in args.values()):
            problems.append(f"{where}.optimizer_args: expected numbers as values, found {_show(args)}")
        else:
            spec.optimizer_args = dict(args)
    if "weights" in section:
        w = section["weights"]
        if not isinstance(w, str) or not w.endswith(".npz"):
            problems.append(f"{where}.weights: expected a relative path to an .npz file, found {_show(w)}")
        elif not _inside(root, w):
            problems.append(f"{where}.weights: '{w}' must be a path inside the submission folder")
        elif not (root / w).is_file():
            problems.append(f"{where}.weights: file '{w}' not found in {root}")
        else:
            spec.weights = w
    if "train" in section:
        spec.train = _class_ref(section["train"], f"{where}.train", root, problems)
    return spec


def load(submission_dir: str | Path) -> Manifest:
    """Parse and validate ``<submission_dir>/submission.yaml``; raise ManifestError listing every problem."""
    root = Path(submission_dir)
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise ManifestError([f"{root}: not a folder (expected a submission folder holding {MANIFEST_NAME})"])
    if not path.is_file():
        raise ManifestError([f"{path}: missing (copy submissions/_template/ and fill it in)"])
    raw = parse_yaml(path)
    if not isinstance(raw, dict):
        raise ManifestError([f"{path}: expected a mapping with 'name' and tracks, found {type(raw).__name__}"])
    problems: list[str] = []
    for key in raw:
        top_keys = ("name",) + tracks.names()
        if key not in top_keys:
            problems.append(f"{path}: {_show(key, quote=False)}: unknown key (known: {', '.join(top_keys)})")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{path}: name: expected the author's name as text, found {_show(name)}")
        name = root.name
    elif len(name.strip()) > MAX_NAME_CHARS:
        problems.append(f"{path}: name: {len(name.strip())} characters, at most {MAX_NAME_CHARS} allowed "
                        f"(found {_show(name)})")
        name = root.name
    specs = {}
    for track in tracks.names():
        if track in raw:
            spec = _track(track, raw[track], f"{path}: {track}", root, problems)
            if spec:
                specs[track] = spec
    if not any(t in raw for t in tracks.names()) and not problems:
        problems.append(f"{path}: no track given (add at least one of: {', '.join(tracks.names())})")
    if problems:
        raise ManifestError(problems)
    return Manifest(path, name.strip(), specs)
