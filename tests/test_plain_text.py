"""Names and messages are plain text everywhere (issue 10 item 8).

A real hostile submission (``tests/adversarial/attacks/terminal_escapes``: escapes in its name, its
crash message, its stderr and its progress phase) is graded in the real sandbox beside a good one,
in one call; then every rendering is read back as bytes: the terminal output, --json, JUnit,
Gradescope, the Markdown summary, the leaderboard as table/md/csv/html/json, the report and the
history. None may hold an escape byte, live rich markup, a live Markdown link or image, raw HTML or a
formula cell. The good submission scores as it would alone.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console
from rich.progress import Progress

from conftest import copy_attack, run_cli, small_quick_config, softmax_submission
from harness.render.tables import csv_cell, markdown_table, md_cell
from harness.text import plain_text

ESC_TEXT = ("\x1b[2J\x1b[H\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x1b]52;c;ZXZpbA==\x07\x9b31m "
            "\x1bc\x9d0;title\x9c\u202e\x08\r")
# the raw bytes, and their JSON spellings: none may appear in anything written
FORBIDDEN = ["\x1b", "\x07", "\x9b", "\x9d", "\x9c", "\x08", "\r", "\u202e",
             "\\u001b", "\\u0007", "\\u009b", "\\u009d", "\\u009c", "\\u0008", "\\r", "\\u202e"]


def assert_inert(text: str, where: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, f"{where}: holds {bad!r}"


# ----------------------------------------------------------------- the sanitiser and the writers

@pytest.mark.parametrize("raw, expected", [
    ("a\x1b[31mred\x1b[0m", "ared"),
    ("\x1b[2J\x1b[Hclear", "clear"),
    ("x\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\y", "xclicky"),  # OSC 8 hyperlink
    ("\x1b]52;c;ZXZpbA==\x07after", "after"),  # OSC 52 clipboard write
    ("\x9b31m8-bit\x9dtitle\x9c", "8-bit"),  # C1 CSI, OSC and ST
    ("bell\x07 back\x08 cr\r end", "bell back cr end"),
    ("\x1bcreset", "reset"),  # ESC c (RIS)
    ("\u202eevil\u2066", "evil"),  # bidi override, isolate
    ("unterminated \x1b]0;title\nnext line", "unterminated \nnext line"),
])
def test_plain_text_removes_every_escape(raw, expected):
    assert plain_text(raw) == expected


def test_plain_text_limits_and_lines():
    assert plain_text("a\nb\tc", one_line=True) == "a b c" and plain_text("a\nb") == "a\nb"
    assert plain_text("x" * 50, 10) == "xxxxxxx..." and plain_text(None) == ""
    assert len(plain_text("\x1b[1m" * 100_000 + "y" * 10, 20)) <= 20  # huge input: bounded work and output


def test_markdown_cells_are_inert():
    cell = md_cell("[x](http://evil.example) ![](http://evil.example/i.png) <img src=x> `c` *e* _u_ | p")
    for live in ("[x](", "![](", "<img", "`c`", "*e*", "_u_", " | "):
        assert live not in cell
    table = markdown_table("t", ["a", "b"], [["[x](y)", "ok"]])
    assert table.splitlines()[-1] == "| \\[x\\]\\(y\\) | ok |"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"x\")"])
def test_csv_formula_cells_are_prefixed(value):
    assert csv_cell(value).startswith("'")


def test_csv_numbers_stay_numbers():
    assert csv_cell(-0.25) == -0.25 and csv_cell(3) == 3 and csv_cell("Alice") == "Alice" and csv_cell(None) == ""


def test_progress_phase_with_markup_does_not_kill_the_refresh():
    """'[/]' as markup raised MarkupError inside rich's refresh thread, which then died silently."""
    from harness.cli.grading import GradeProgress, make_progress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200)
    progress = Progress(*make_progress().columns, console=console, auto_refresh=False)
    tracker = GradeProgress(progress)
    with progress:
        tracker.callback("[bold]sub[/]", "classify")("[/]" + ESC_TEXT, 1, 2)
        progress.refresh()  # raised rich.errors.MarkupError before
        tracker.done("[bold]sub[/]", "classify", "CRASH")
        progress.refresh()
    out = buf.getvalue()
    assert "[/]" in out and "[bold]sub[/]" in out  # shown as text
    for bad in ("\x1b]", "\x07", "\x9b", "\x1b[2J", "\x1bc"):
        assert bad not in out


# ----------------------------------------------------------------- a real hostile grade, every rendering

@pytest.fixture(scope="module")
def hostile(tmp_path_factory, mnist):
    tmp = tmp_path_factory.mktemp("plain")
    cfg = small_quick_config(tmp)
    subs = tmp / "submissions"
    copy_attack("terminal_escapes", subs / "escapes")
    softmax_submission(subs / "good", name="Good")
    db = tmp / "leaderboard.db"
    r = run_cli("grade", subs / "escapes", subs / "good", "--quick", "--db", db, "--config", cfg,
                "--track", "classify", "--json", tmp / "r.json", "--junit", tmp / "j.xml",
                "--gradescope", tmp / "g.json", "--summary-md", tmp / "s.md", cwd=tmp)
    return {"tmp": tmp, "db": db, "cfg": cfg, "subs": subs, "grade": r}


def test_hostile_grade_is_a_crash_row_and_the_neighbour_is_graded(hostile):
    r = hostile["grade"]
    assert r.returncode == 1, r.stderr  # one submission failed
    doc = json.loads((hostile["tmp"] / "r.json").read_text())
    by_id = {s["id"]: s for s in doc["submissions"]}
    bad, good = by_id["escapes"]["tracks"]["classify"], by_id["good"]["tracks"]["classify"]
    assert bad["status"] in ("CRASH", "INVALID_SUBMISSION") and "hostile message" in bad["message"], bad
    assert "click" in bad["message"] and "[/]" in bad["message"]  # the text stays, inert
    assert good["status"] == "OK" and 0.7 < good["metrics"]["test_accuracy_public"] < 1


def test_terminal_output_and_ci_files_are_plain(hostile):
    r = hostile["grade"]
    assert_inert(r.stdout, "grade stdout")
    assert_inert(r.stderr, "grade stderr (progress bars)")
    assert "Traceback" not in r.stderr and "MarkupError" not in r.stderr
    assert "[/]" in r.stdout  # the name and message as text, not markup
    for name in ("r.json", "j.xml", "g.json", "s.md"):
        assert_inert((hostile["tmp"] / name).read_text(), name)
    summary = (hostile["tmp"] / "s.md").read_text()
    for live in ("](http", "![", "<img", "[/]"):
        assert live not in summary, live
    g = json.loads((hostile["tmp"] / "g.json").read_text())
    assert g["output_format"] == "text" and all(t["output_format"] == "text" for t in g["tests"])


def test_store_holds_plain_text(hostile):
    from harness.store import Store

    with Store(hostile["db"]) as s:
        runs = s.runs(submission_id="escapes")
    assert runs
    for run in runs:
        assert_inert(run.name + run.message, "stored run")
        assert run.name.startswith("=HYPERLINK")  # stored as the student wrote it, minus the escapes


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "html", "json"])
def test_leaderboard_exports_are_inert(hostile, fmt):
    out = hostile["tmp"] / f"lb.{fmt}"
    r = run_cli("leaderboard", "--quick", "--db", hostile["db"], "--format", fmt, "-o", out, cwd=hostile["tmp"])
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert_inert(text, fmt)
    assert "escapes" in text
    if fmt == "md":
        for live in ("](http", "![", "<img", "`c`"):
            assert live not in text, live
    if fmt == "html":
        assert "<img src=x" not in text and "&lt;img src=x&gt;" in text
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        names = [row["name"] for row in rows if row["submission"] == "escapes"]
        assert names and all(n.startswith("'=HYPERLINK") for n in names)


def test_report_and_history_are_inert(hostile):
    page = hostile["tmp"] / "report.html"
    r = run_cli("report", "escapes", "--db", hostile["db"], "-o", page, cwd=hostile["tmp"])
    assert r.returncode == 0, r.stderr
    text = page.read_text()
    assert_inert(text, "report")
    assert "<img src=x" not in text and "hostile message" in text
    for args in (("history", "escapes"), ("history", "escapes", "--json")):
        r = run_cli(*args, "--db", hostile["db"], cwd=hostile["tmp"])
        assert r.returncode == 0, r.stderr
        assert_inert(r.stdout + r.stderr, " ".join(args))
