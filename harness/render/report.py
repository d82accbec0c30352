"""``harness report PATH [-o FILE]``: one self-contained HTML page about one submission.

For the latest run of each track the submission entered: status and message, every metric, its rank
in the standings, and per track the confusion matrix and per-class accuracy (classify; the public half
of the test set until ``harness reveal``, the whole test set after), the sample grid (generate), the
ROC curve of every case (anomaly), then the last lines the student's code logged, and the history of
every stored run. Inline CSS, images as data URIs, curves as inline SVG: the file can be mailed.
"""

from __future__ import annotations

from pathlib import Path

from harness.store.artifacts import png_data_uri, read_json_artifact, read_text_artifact
from harness import tracks
from harness.competition import Competition
from harness.render.exports import esc, page, roc_legend, roc_svg
from harness.render.tables import fmt
from harness.standings.overall import selection_rule
from harness.standings.per_track import columns, rank_key, standings
from harness.standings.visibility import visible_metrics
from harness.manifest import submission_id
from harness.store import Run, Store


def submission_id_of(target: str | Path) -> str:
    """A submission folder -> its id (its path relative to the submissions root, as ``harness grade``
    records it); else the text itself."""
    p = Path(target)
    return submission_id(p) if p.is_dir() else str(target).rstrip("/").split("/")[-1]


def history_runs(store: Store, target: str | Path, track: str | None = None) -> list[Run]:
    return store.runs(track=track, submission_id=submission_id_of(target))


def standing_run_ids(store: Store, comp: Competition, runs: list[Run]) -> dict[tuple[str, str], tuple[int | None, int, int]]:
    """(track, profile) -> (the run id standing on the leaderboard, its rank or None, ranked rows) for these runs."""
    out = {}
    if not runs:
        return out
    sid, kind = runs[-1].submission_id, runs[-1].kind
    for key in sorted({(r.track, r.profile) for r in runs}):
        st = standings(store, key[0], key[1], None, selection_rule(comp))
        ranked = sum(1 for row in st.rows if row.rank is not None)
        for row in st.rows:
            if row.run.submission_id == sid and row.run.kind == kind:
                out[key] = (row.run.id, row.rank, ranked)
    return out


def key_metric(run: Run, private: bool) -> tuple[str, str]:
    key = rank_key(run.track, private)
    value = run.metrics.get(key)
    return key, ("" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value)))


# ----- pieces

def confusion_html(cm: dict, private: bool) -> str:
    pub = cm.get("public")
    priv = cm.get("private")
    if not isinstance(pub, list):
        return ""
    if private and isinstance(priv, list):
        m = [[int(a) + int(b) for a, b in zip(ra, rb)] for ra, rb in zip(pub, priv)]
        which = "the whole test set (10,000 images)"
    else:
        m = [[int(a) for a in row] for row in pub]
        which = "the public half of the test set (the private half is shown after the reveal)"
    n = len(m)
    off = max((m[i][j] for i in range(n) for j in range(n) if i != j), default=0) or 1
    diag = max((m[i][i] for i in range(n)), default=0) or 1
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{j}</th>" for j in range(n)) + "<th>total</th></tr>"
    rows = []
    for i in range(n):
        cells = []
        for j in range(n):
            v = m[i][j]
            if i == j:
                a = 0.15 + 0.6 * v / diag
                style = f"background: rgba(26,127,55,{a:.2f})"
            else:
                a = 0.75 * v / off
                style = f"background: rgba(207,34,46,{a:.2f})" if v else ""
            cells.append(f'<td style="{style}">{v}</td>')
        rows.append(f"<tr><th>{i}</th>{''.join(cells)}<td>{sum(m[i])}</td></tr>")
    per_class = []
    for i in range(n):
        total = sum(m[i])
        acc = m[i][i] / total if total else float("nan")
        worst = max(((m[i][j], j) for j in range(n) if j != i), default=(0, None))
        confused = f"{worst[1]} ({worst[0]})" if worst[0] else ""
        width = 0 if total == 0 else int(round(160 * acc))
        per_class.append(f'<tr data-digit="{i}"><td>{i}</td><td>{acc:.4f}</td>'
                         f'<td class="l"><span class="bar" style="width:{width}px"></span></td>'
                         f"<td>{total}</td><td>{confused}</td></tr>")
    return (f'<div class="grid2"><div><h3>Confusion matrix</h3><div class="caption">rows: true digit, columns: '
            f'predicted digit; {which}</div><table class="cm" id="confusion">{head}{"".join(rows)}</table></div>'
            '<div><h3>Per-class accuracy</h3><table id="per-class"><tr><th>digit</th><th>accuracy</th><th></th>'
            f'<th>images</th><th>most confused with</th></tr>{"".join(per_class)}</table></div></div>')


def metrics_html(run: Run, private: bool) -> str:
    known = {k: (label, f) for k, label, f in columns(run.track, True)}
    known.update({k: (label, f) for k, label, f in columns(run.track, False)})
    rows = []
    # as on the leaderboard: nothing that gives the private half away before the reveal
    shown = visible_metrics(run.track, run.metrics, revealed=private)
    hidden = len(set(run.metrics) - set(shown))
    for k, v in shown.items():
        label, spec = known.get(k, (k, "{:.4g}" if isinstance(v, float) else "{}"))
        rows.append(f'<tr><td class="l">{esc(k)}</td><td>{esc(fmt(v, spec))}</td></tr>')
    note = f'<div class="caption">{hidden} whole-test or private-half metric{"s" if hidden != 1 else ""} hidden until ' \
        'the reveal</div>' \
        if hidden else ""
    return ('<table class="metrics" style="width:auto"><tr><th class="l">metric</th><th>value</th></tr>'
            + "".join(rows) + "</table>" + note)


def track_section(run: Run, standing, private: bool, store_path) -> str:
    parts = [f'<section id="track-{esc(run.track)}" data-status="{esc(run.status)}"><h2>{esc(run.track)}</h2>']
    key, value = key_metric(run, private)
    rank_text = ""
    if standing:
        sid, rank, ranked = standing
        here = "this run" if sid == run.id else f"run #{sid}"
        rank_text = f" &middot; rank {rank} of {ranked} ({here} stands)" if rank else f" &middot; unranked ({here} stands)"
    status_cls = "status-OK" if run.status == "OK" else "status-bad"
    parts.append(f'<div class="meta">latest run #{run.id} &middot; {esc(run.created_at)} &middot; profile '
                 f'{esc(run.profile)} &middot; <span class="{status_cls}">{esc(run.status)}</span>'
                 f'{" &middot; " + esc(key) + " " + esc(value) if value else ""}{rank_text} &middot; device '
                 f'{esc(run.device or "")} &middot; isolation {esc(run.isolation or "")}</div>')
    if run.message:
        parts.append(f"<pre class=\"message\">{esc(run.message)}</pre>")
    if run.status == "OK":
        parts.append(metrics_html(run, private))
        if run.track == "classify":
            cm = read_json_artifact(run.artifacts.get("confusion_matrix"), store_path)
            if isinstance(cm, dict):
                parts.append(confusion_html(cm, private))
        elif run.track == "generate":
            uri = png_data_uri(run.artifacts.get("samples_grid"), store_path)
            if uri:
                parts.append(f'<h3>Samples</h3><img class="grid big" id="samples" alt="the first 100 samples" src="{uri}">')
        elif run.track == "anomaly":
            roc = read_json_artifact(run.artifacts.get("roc_curves"), store_path)
            cases = roc.get("cases") if isinstance(roc, dict) else None
            if isinstance(cases, dict) and cases:
                table = "".join(
                    f'<tr><td class="l">{esc(c)}</td><td>{esc(fmt(run.metrics.get("auroc_" + c), "{:.4f}"))}</td>'
                    f'<td>{esc(fmt(run.metrics.get("auprc_" + c), "{:.4f}"))}</td></tr>' for c in sorted(cases))
                parts.append('<h3>ROC curves</h3><div class="grid2"><div>'
                             + roc_svg(cases, 320, legend=True, title=f"ROC curves of {run.submission_id}")
                             + roc_legend(cases) + '</div><table style="width:auto"><tr><th class="l">case</th>'
                             f"<th>AUROC</th><th>AUPRC</th></tr>{table}</table></div>")
    log = read_text_artifact(run.artifacts.get("log"), store_path)
    if log:
        parts.append(f'<h3>Log (last lines)</h3><pre class="log">{esc(log)}</pre>')
    parts.append("</section>")
    return "".join(parts)


def history_html(runs: list[Run], standing: dict, private: bool) -> str:
    rows = []
    standing_ids = {v[0] for v in standing.values()}
    for r in reversed(runs):
        key, value = key_metric(r, private)
        mark = "&#9733;" if r.id in standing_ids else ""
        rows.append(f'<tr data-run="{r.id}"><td>{r.id}</td><td class="l">{esc(r.created_at)}</td><td class="l">{esc(r.track)}</td>'
                    f'<td class="l">{esc(r.profile)}</td><td class="l {"status-OK" if r.status == "OK" else "status-bad"}">'
                    f'{esc(r.status)}</td><td class="l">{esc(key)}</td><td>{esc(value)}</td>'
                    f'<td class="l"><code>{esc(r.sha256[:12])}</code></td><td>{mark}</td></tr>')
    return ('<section id="history"><h2>History</h2><div class="caption">every stored run, newest first; '
            '&#9733; = the run standing on the leaderboard</div><table><tr><th>run</th><th class="l">date (UTC)</th>'
            '<th class="l">track</th><th class="l">profile</th><th class="l">status</th><th class="l">metric</th>'
            '<th>value</th><th class="l">sha256</th><th>stands</th></tr>' + "".join(rows) + "</table></section>")


def build_report(store: Store, comp: Competition, target: str | Path, private: bool | None = None) -> str | None:
    """The report page for one submission (folder or id); None if the store holds no run of it."""
    runs = history_runs(store, target)
    if not runs:
        return None
    if private is None:
        private = store.revealed
    latest_kind = runs[-1].kind
    runs = [r for r in runs if r.kind == latest_kind]
    standing = standing_run_ids(store, comp, runs)
    last = runs[-1]
    half = ('<span class="banner private">private scores (revealed)</span>' if private else
            '<span class="banner public">public scores until the reveal</span>')
    body = [f"<h1>{esc(last.name)}</h1>",
            f'<div class="meta">submission <code>{esc(last.submission_id)}</code> &middot; {esc(last.path)} &middot; '
            f'sha256 <code>{esc(last.sha256[:16])}</code> &middot; {half}</div>']
    summary = []
    sections = []
    for track in tracks.names():
        mine = [r for r in runs if r.track == track]
        if not mine:
            continue
        run = mine[-1]
        st = standing.get((track, run.profile))
        key, value = key_metric(run, private)
        rank = "" if not st or st[1] is None else f"{st[1]} / {st[2]}"
        summary.append(f'<tr data-track="{esc(track)}"><td class="l"><a href="#track-{esc(track)}">{esc(track)}</a></td>'
                       f'<td class="l {"status-OK" if run.status == "OK" else "status-bad"}">{esc(run.status)}</td>'
                       f'<td class="l">{esc(key)}</td><td>{esc(value)}</td><td>{esc(rank)}</td>'
                       f'<td class="l">{esc(run.profile)}</td><td class="l">{esc(run.created_at)}</td></tr>')
        sections.append(track_section(run, st, private, store.path))
    body.append('<table id="summary"><tr><th class="l">track</th><th class="l">status</th><th class="l">ranked by</th>'
                '<th>score</th><th>rank</th><th class="l">profile</th><th class="l">graded (UTC)</th></tr>'
                + "".join(summary) + "</table>")
    body += sections
    body.append(history_html(runs, standing, private))
    return page(f"Report: {last.name} ({last.submission_id})", "\n".join(body))


def default_output(store_path, target) -> Path:
    return Path(store_path).parent / "reports" / f"{submission_id_of(target)}.html"

