"""Copying a submission into the job's work folder: bounded in bytes, files and depth, links and special files refused."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.sandbox.limits import _fmt_bytes
from harness.sandbox.mounts import _under



class SubmissionCopyError(Exception):
    """The submission tree cannot be copied safely; the message names the offending path."""


@dataclass
class CopySummary:
    files: int
    bytes: int
    skipped: list[str] = field(default_factory=list)  # excluded folders (e.g. .git)


DEFAULT_EXCLUDE = (".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints", ".mypy_cache",
                   ".pytest_cache", ".venv", "venv")


MAX_BYTES = 256 << 20   # the whole submission
MAX_FILES = 2000        # regular files (links to files count as files)
MAX_ENTRIES = 5000      # files, folders and skipped folders: a folder of a million empty folders is refused
MAX_DEPTH = 32          # folders inside folders


@dataclass
class SubmissionTree:
    """What a scan found: the root, and the folders and files to copy or hash, in a stable order."""
    root: Path
    plan: list[tuple[str, Path, Path | None, int]]  # (kind "dir"|"file", rel, source file, mode)
    files: int
    bytes: int
    skipped: list[str]

    def file_entries(self):
        """(relative posix path, source path) of every file, sorted by relative path."""
        return sorted((rel.as_posix(), source) for kind, rel, source, _ in self.plan if kind == "file")


def scan_submission(src: str | os.PathLike, *, max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES,
                    max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH,
                    exclude: Iterable[str] = DEFAULT_EXCLUDE) -> SubmissionTree:
    """Check the tree ``src`` against every limit from metadata alone (lstat: kind, st_size), reading
    no file: an iterative walk (no recursion), at most ``max_depth`` folders deep, ``max_entries``
    entries, ``max_files`` files and ``max_bytes`` bytes (by st_size, so a sparse file that claims
    32 GiB is refused without a read). Links are resolved as :func:`copy_submission` documents.
    Raises SubmissionCopyError naming the offending path (relative to ``src``)."""
    src = Path(src)
    if not src.is_dir():
        raise SubmissionCopyError(f"{src}: not a folder")
    root = src.resolve()
    exclude = set(exclude)
    plan: list[tuple[str, Path, Path | None, int]] = []
    n_files = n_bytes = n_entries = 0
    skipped: list[str] = []
    stack = [Path(".")]
    while stack:
        rel_dir = stack.pop()
        entries = []
        try:
            with os.scandir(root / rel_dir) as it:
                for entry in it:
                    n_entries += 1
                    if n_entries > max_entries:
                        raise SubmissionCopyError(f"{rel_dir / entry.name}: too many files and folders (more "
                                                  f"than {max_entries}); remove data sets, checkpoints or caches")
                    entries.append(entry)
        except OSError as e:
            raise SubmissionCopyError(f"{rel_dir}: cannot read folder ({e.strerror})") from None
        entries.sort(key=lambda e: e.name)
        for entry in entries:
            rel = rel_dir / entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if entry.name in exclude:
                    skipped.append(str(rel))
                    continue
                if len(rel.parts) >= max_depth:
                    raise SubmissionCopyError(f"{_short(rel)}: folders nested more than {max_depth} deep; "
                                              f"flatten the submission")
                plan.append(("dir", rel, None, 0o755))
                stack.append(rel)
                continue
            source = root / rel
            if stat.S_ISLNK(st.st_mode):
                target = Path(os.path.realpath(source))
                try:
                    target.relative_to(root)
                except ValueError:
                    raise SubmissionCopyError(
                        f"{rel}: symbolic link pointing outside the submission "
                        f"(-> {_short(os.readlink(source))}); copy the file in instead") from None
                try:
                    st = target.stat()
                except OSError:
                    raise SubmissionCopyError(f"{rel}: broken symbolic link "
                                              f"(-> {_short(os.readlink(source))})") from None
                if not stat.S_ISREG(st.st_mode):
                    raise SubmissionCopyError(f"{rel}: symbolic link to a folder or special file is "
                                              f"not allowed (-> {_short(os.readlink(source))})")
                source = target
            elif not stat.S_ISREG(st.st_mode):
                kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
                        else "device file" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                        else "special file")
                raise SubmissionCopyError(f"{rel}: {kind} not allowed in a submission")
            n_files += 1
            n_bytes += st.st_size
            if n_files > max_files:
                raise SubmissionCopyError(f"{rel}: too many files (more than {max_files}); "
                                          f"remove data sets, checkpoints or caches")
            if n_bytes > max_bytes:
                sparse = (f" ({_fmt_bytes(st.st_blocks * 512)} on disk: a sparse file)"
                          if st.st_blocks * 512 < st.st_size // 2 else "")
                raise SubmissionCopyError(f"{rel}: the submission is larger than {_fmt_bytes(max_bytes)} (this file: "
                                          f"{_fmt_bytes(st.st_size)}{sparse}); remove large files")
            plan.append(("file", rel, source, 0o755 if st.st_mode & 0o100 else 0o644))
    return SubmissionTree(root, plan, n_files, n_bytes, skipped)


def _short(text, limit: int = 200) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def copy_submission(src: str | os.PathLike, dst: str | os.PathLike, *, max_bytes: int = MAX_BYTES,
                    max_files: int = MAX_FILES, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                    tree: SubmissionTree | None = None) -> CopySummary:
    """Copy the submission tree ``src`` to the new folder ``dst`` (which must not exist or be empty).

    Regular files and folders are copied; folders named in ``exclude`` are skipped. A symbolic link
    is copied as a regular file when it resolves to a regular file inside ``src``; a link pointing
    outside ``src``, to a folder, or nowhere is refused, and so are device files, FIFOs and sockets.
    More than ``max_files`` files or ``max_bytes`` bytes in all, more than MAX_ENTRIES entries or
    MAX_DEPTH levels of folders is refused (:func:`scan_submission`, before anything is read; pass
    its ``tree`` to skip the second scan). The copy is readable by everyone (folders 0755, files
    0644 or 0755), so the sandbox uid can read it.
    Raises SubmissionCopyError naming the offending path (relative to ``src``).
    """
    dst = Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise SubmissionCopyError(f"{dst}: destination exists and is not an empty folder")
    # Pass 1: validate and plan, touching nothing.
    if tree is None:
        tree = scan_submission(src, max_bytes=max_bytes, max_files=max_files, exclude=exclude)
    root, plan, n_files, n_bytes, skipped = tree.root, tree.plan, tree.files, tree.bytes, tree.skipped

    # Pass 2: copy. Files are opened without following links (the plan resolved links already).
    dst.mkdir(parents=True, exist_ok=True)
    os.chmod(dst, 0o755)
    copied = 0
    for kind, rel, source, mode in plan:
        target = dst / rel
        if kind == "dir":
            target.mkdir()
            os.chmod(target, 0o755)
            continue
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise SubmissionCopyError(f"{rel}: cannot open ({e.strerror})") from None
        with os.fdopen(fd, "rb") as fin:
            st = os.fstat(fin.fileno())
            # Changed under our feet (a folder on the way swapped for a link, a file for a FIFO)?
            opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else str(source)
            if not stat.S_ISREG(st.st_mode) or not _under(opened, str(root)):
                raise SubmissionCopyError(f"{rel}: changed while being copied")
            with open(target, "xb") as fout:
                remaining = max_bytes - copied
                while chunk := fin.read(1 << 20):
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise SubmissionCopyError(f"{rel}: the submission is larger than "
                                                  f"{_fmt_bytes(max_bytes)} (file grew while copying)")
                    fout.write(chunk)
                copied = max_bytes - remaining
        os.chmod(target, mode)
    for kind, rel, _, _ in plan:  # restore folder modes (mkdir may have been affected by umask)
        if kind == "dir":
            os.chmod(dst / rel, 0o755)
    return CopySummary(files=n_files, bytes=n_bytes, skipped=skipped)


def remove_tree(path: str | os.PathLike, max_open: int = 64) -> None:
    """Remove the folder ``path`` and everything under it, whatever a run left there: no recursion
    (shutil.rmtree recursed past Python's limit on a 1,100-deep chain of folders written to /output),
    no link followed, at most ``max_open`` folders open at once (deeper folders are moved up to the
    top first), and errors skipped rather than raised."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        top = os.open(path, flags)
    except FileNotFoundError:
        return
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return
    stack: list[tuple[int, int | None, str | None]] = [(top, None, None)]
    failed: set[int] = set()
    moved = 0
    try:
        while stack:
            fd, parent, name = stack[-1]
            descended = False
            try:
                with os.scandir(fd) as it:
                    entries = list(it)
            except OSError:
                entries = []
            for e in entries:
                try:
                    if e.inode() in failed:
                        continue
                    if not e.is_dir(follow_symlinks=False):
                        os.unlink(e.name, dir_fd=fd)
                    elif len(stack) >= max_open:
                        moved += 1
                        os.rename(e.name, f".removing-{moved}", src_dir_fd=fd, dst_dir_fd=top)
                    else:
                        stack.append((os.open(e.name, flags, dir_fd=fd), fd, e.name))
                        descended = True
                        break
                except OSError:
                    failed.add(e.inode())
            if not descended:
                stack.pop()
                if parent is not None:
                    ino = os.fstat(fd).st_ino
                    os.close(fd)
                    try:
                        os.rmdir(name, dir_fd=parent)
                    except OSError:
                        failed.add(ino)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
        if not stack:
            os.close(top)
    try:
        os.rmdir(path)
    except OSError:
        pass
