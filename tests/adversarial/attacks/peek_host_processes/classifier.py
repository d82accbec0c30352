"""Hostile submission peek_host_processes: expected CRASH."""

import os

from hostile import HOST, blocked, hostile_model, succeeded


def attack(x=None):
    seen = []
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        seen.append(f"{pid}: {cmd[:50]}")
        if "pytest" in cmd or HOST["subs_root"] in cmd or " grade " in cmd:
            succeeded(f"host process {pid}: {cmd[:200]}")
    try:
        with open("/proc/1/environ", "rb") as f:
            succeeded(f"/proc/1/environ: {f.read(100)!r}")
    except OSError as e:
        seen.append(f"/proc/1/environ: {type(e).__name__}")
    blocked(f"only the sandbox is visible: {seen}")


Model, fit = hostile_model(attack, 'train')
