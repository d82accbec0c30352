"""Hostile submission write_store: expected CRASH."""

import os
import sqlite3

from hostile import HOST, blocked, err, hostile_model, succeeded


def attack(x=None):
    errors = []
    for p in [HOST["db"], os.path.join(HOST["leaderboard"], "leaderboard.db")]:
        if not os.path.exists(p):
            errors.append(f"{p}: not visible")
            continue
        try:
            con = sqlite3.connect(p)
            con.execute("DELETE FROM runs")
            con.execute("CREATE TABLE pwned (x)")
            con.commit()
        except Exception as e:  # noqa: BLE001  (whatever stops it)
            errors.append(f"{p}: {err(e)}")
            continue
        succeeded(f"wrote {p}")
    blocked("; ".join(errors))


Model, fit = hostile_model(attack, 'train')
