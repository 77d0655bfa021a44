"""Turn a results file into ``benchmarks.md`` and one PNG chart per workload.

Numbers: for each workload, database and implementation, the median of the timed runs
with their minimum and maximum; the ratio is that median over the plain SQLAlchemy median
of the same run (its spread: the implementation's min and max over the same plain
median). Statement counts are deterministic; a count that varied between runs is shown as
a range. Targets of issue #8 are evaluated from the same numbers.

    python benchmarks/run.py --report-only docs/benchmarks/results.json
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any, Optional

LABELS = {
    "plain": "SQLAlchemy (no history)",
    "ours": "sqlalchemy-history (this tree)",
    "history": "SQLAlchemy-History {version}",
    "continuum": "SQLAlchemy-Continuum {version}",
}
SHORT = {
    "plain": "plain",
    "ours": "this tree",
    "history": "History {version}",
    "continuum": "Continuum {version}",
}
DB_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}
COLORS = {"plain": "#9e9e9e", "ours": "#1b7837", "history": "#2166ac", "continuum": "#b2182b"}
PEERS = ("history", "continuum")
#: Targets of issue #8 for write workloads: ratio to plain on PostgreSQL and MariaDB.
RATIO_TARGETS = {
    "insert": 2.0,
    "update_validity": 2.0,
    "update_subquery": 2.0,
    "commits": 2.2,
    "noop": 1.3,
}
TARGET_DBS = ("postgresql", "mysql")
EAGER_QUERY_TARGET = 4


@dataclasses.dataclass
class Stat:
    status: str
    impl: str = ""
    n: int = 0
    median: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    statements: Optional[tuple[int, int]] = None
    detail: Optional[str] = None
    #: Seconds of each repetition that ran.
    by_rep: dict[int, float] = dataclasses.field(default_factory=dict)
    #: Median of plain SQLAlchemy over the same repetitions (the ratio's denominator).
    base: Optional[float] = None


def aggregate(results: dict[str, Any]) -> dict[tuple[str, str, str], Stat]:
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in results["runs"]:
        grouped.setdefault((run["workload"], run["db"], run["impl"]), []).append(run)
    stats: dict[tuple[str, str, str], Stat] = {}
    for key, runs in grouped.items():
        bad = [r for r in runs if r["status"] != "ok"]
        if bad:
            stats[key] = Stat(bad[0]["status"], key[2], n=len(runs), detail=bad[0].get("detail"))
            continue
        seconds = [r["seconds"] for r in runs]
        counts = [r["statements"] for r in runs]
        stats[key] = Stat(
            "ok",
            key[2],
            n=len(runs),
            median=statistics.median(seconds),
            low=min(seconds),
            high=max(seconds),
            statements=(min(counts), max(counts)),
            by_rep={r["rep"]: r["seconds"] for r in runs},
        )
    # Pair every implementation with plain SQLAlchemy runs of the same repetitions, so a
    # cell measured in fewer repetitions is compared with the machine as it was then.
    for (workload, db, impl), stat in stats.items():
        plain = stats.get((workload, db, "plain"))
        if impl == "plain" or plain is None or stat.status != "ok" or plain.status != "ok":
            continue
        same = [plain.by_rep[r] for r in stat.by_rep if r in plain.by_rep]
        stat.base = statistics.median(same) if same else plain.median
    return stats


def _label(impl: str, results: dict[str, Any], table: dict[str, str] = LABELS) -> str:
    version = results["meta"]["implementations"].get(impl, {}).get("library") or "?"
    return table[impl].format(version=version)


def _ms(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:,.1f} ms"


def _count(statements: Optional[tuple[int, int]]) -> str:
    if statements is None:
        return "-"
    low, high = statements
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _impls(results: dict[str, Any]) -> list[str]:
    return [
        i
        for i in ("plain", "ours", "history", "continuum")
        if i in results["meta"]["implementations"]
    ]


def _dbs(results: dict[str, Any]) -> list[str]:
    return [d for d in ("sqlite", "postgresql", "mysql") if d in results["meta"]["databases"]]


def ratio(
    stats: dict[tuple[str, str, str], Stat], workload: str, db: str, impl: str
) -> Optional[float]:
    mine = stats.get((workload, db, impl))
    if mine is None or mine.median is None or not mine.base:
        return None
    return mine.median / mine.base


def versus(
    stats: dict[tuple[str, str, str], Stat], workload: str, db: str, peer: str
) -> Optional[tuple[float, float, str]]:
    """Compare this tree with ``peer`` over the repetitions both ran: (ours, peer, unit).

    With a plain baseline the values are ratios to plain SQLAlchemy of those repetitions;
    without one, median seconds.
    """
    ours, other = stats.get((workload, db, "ours")), stats.get((workload, db, peer))
    if ours is None or other is None or ours.median is None or other.median is None:
        return None
    reps = [r for r in other.by_rep if r in ours.by_rep]
    if not reps:
        return None
    mine = statistics.median(ours.by_rep[r] for r in reps)
    theirs = statistics.median(other.by_rep[r] for r in reps)
    plain = stats.get((workload, db, "plain"))
    if plain is not None and plain.status == "ok" and all(r in plain.by_rep for r in reps):
        base = statistics.median(plain.by_rep[r] for r in reps)
        return mine / base, theirs / base, "x"
    return mine, theirs, "s"


def _status_text(stat: Optional[Stat]) -> str:
    if stat is None:
        return "-"
    if stat.status == "unsupported" and stat.impl in PEERS:
        return "not supported"  # a released library: no "yet" about it
    return {
        "unsupported": "not supported yet",
        "failed": "**failed check**",
        "error": "**error**",
        "timeout": "**timeout**",
    }.get(stat.status, stat.status)


def cell(
    stats: dict[tuple[str, str, str], Stat], workload: str, db: str, impl: str, with_plain: bool
) -> str:
    """Headline cell: ratio to plain (or time when there is no plain) and statements."""
    stat = stats.get((workload, db, impl))
    if stat is None or stat.status != "ok":
        return _status_text(stat)
    if impl == "plain":
        return f"{_ms(stat.median)} · {_count(stat.statements)} st"
    r = ratio(stats, workload, db, impl) if with_plain else None
    value = f"**{r:.2f}x**" if r is not None else _ms(stat.median)
    return f"{value} · {_count(stat.statements)} st"


# -- targets -----------------------------------------------------------------------------


def targets(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat]
) -> list[tuple[str, str, str]]:
    """Evaluate issue #8's targets: rows of (target, verdict, evidence)."""
    rows: list[tuple[str, str, str]] = []
    dbs = [d for d in TARGET_DBS if d in _dbs(results)] or _dbs(results)
    where = ", ".join(DB_LABELS[d] for d in dbs)
    for workload, limit in RATIO_TARGETS.items():
        if workload not in results["workloads"]:
            continue
        title = results["workloads"][workload]["title"]
        evidence, ok = [], True
        for db in dbs:
            r = ratio(stats, workload, db, "ours")
            ours, plain = stats.get((workload, db, "ours")), stats.get((workload, db, "plain"))
            if (
                r is None
                or ours is None
                or plain is None
                or ours.statements is None
                or plain.statements is None
            ):
                evidence.append(f"{DB_LABELS[db]}: {_status_text(ours)}")
                ok = False
                continue
            extra = ours.statements[1] - plain.statements[1]
            evidence.append(f"{DB_LABELS[db]} {r:.2f}x ({extra:+,} statements)")
            ok = ok and r <= limit
        note = " and zero history rows (checked)" if workload == "noop" else ""
        rows.append(
            (
                f"{title}: ≤ {limit}x on {where}{note}",
                "met" if ok else "**missed**",
                "; ".join(evidence),
            )
        )
    if "temporal_eager" in results["workloads"]:
        evidence, ok = [], True
        for db in _dbs(results):
            stat = stats.get(("temporal_eager", db, "ours"))
            if stat is None or stat.statements is None:
                evidence.append(f"{DB_LABELS[db]}: {_status_text(stat)}")
                ok = False
            else:
                evidence.append(f"{DB_LABELS[db]} {_count(stat.statements)}")
                ok = ok and stat.statements[1] <= EAGER_QUERY_TARGET
        size = results["workloads"]["temporal_eager"]["size"]
        if not ok and any(f" {1 + -(-size // 500)}" in e for e in evidence):
            evidence.append(
                f"{1 + -(-size // 500)} = 1 + {size:,}/500: selectinload() sends the parent keys "
                "in IN lists of 500"
            )
        title = results["workloads"]["temporal_eager"]["title"]
        rows.append(
            (
                f"{title}: ≤ {EAGER_QUERY_TARGET} queries",
                "met" if ok else "**missed**",
                "; ".join(evidence),
            )
        )
    misses, wins, total, lacking = [], 0, 0, 0
    for workload in results["workloads"]:
        for db in _dbs(results):
            ours = stats.get((workload, db, "ours"))
            for peer in PEERS:
                other = stats.get((workload, db, peer))
                if other is None:
                    continue
                if other.status == "unsupported":
                    lacking += 1  # nothing to be faster than: counted apart
                    continue
                total += 1
                pair = versus(stats, workload, db, peer)
                if ours is None or ours.median is None:
                    misses.append(f"{workload}/{DB_LABELS[db]}: ours {_status_text(ours)}")
                elif other.median is None or pair is None or pair[0] < pair[1]:
                    wins += 1
                else:
                    mine, theirs, unit = pair
                    shown = (
                        f"{mine:.2f}x vs {theirs:.2f}x"
                        if unit == "x"
                        else f"{_ms(mine)} vs {_ms(theirs)}"
                    )
                    misses.append(
                        f"{workload}/{DB_LABELS[db]} vs {_label(peer, results, SHORT)}: {shown}"
                    )
    if total:
        verdict = "met" if not misses else "**missed**"
        evidence = f"faster in {wins} of {total} comparisons" + (
            f"; not in: {'; '.join(misses)}" if misses else ""
        )
        if lacking:
            evidence += f" ({lacking} more where the released library lacks the feature)"
        rows.append(("Faster than both released libraries on every workload", verdict, evidence))
    return rows


# -- output ------------------------------------------------------------------------------


def headline_text(results: dict[str, Any]) -> str:
    """A plain-text headline for the terminal."""
    stats = aggregate(results)
    impls = _impls(results)
    lines = [
        "",
        f"{'workload':<18}{'db':<12}" + "".join(f"{_label(i, results, SHORT):>26}" for i in impls),
    ]
    for workload, meta in results["workloads"].items():
        for db in _dbs(results):
            cells = []
            for impl in impls:
                stat = stats.get((workload, db, impl))
                if stat is None:
                    cells.append("-")
                elif stat.status != "ok":
                    cells.append(stat.status.upper())
                else:
                    r = (
                        ratio(stats, workload, db, impl)
                        if meta["plain"] and impl != "plain"
                        else None
                    )
                    value = f"{r:.2f}x" if r is not None else _ms(stat.median)
                    cells.append(f"{value} {_count(stat.statements)}st")
            lines.append(f"{workload:<18}{db:<12}" + "".join(f"{c:>26}" for c in cells))
    for target, verdict, evidence in targets(results, stats):
        lines.append(f"target: {verdict.strip('*')}: {target}: {evidence}")
    return "\n".join(lines)


def write(results: dict[str, Any], output: Path, charts: bool = True) -> None:
    """Write ``output/benchmarks.md`` and, with ``charts``, ``output/benchmarks/<workload>.png``."""
    stats = aggregate(results)
    output.mkdir(parents=True, exist_ok=True)
    chart_dir = output / "benchmarks"
    drawn: set[str] = set()
    if charts:
        chart_dir.mkdir(parents=True, exist_ok=True)
        drawn = draw_charts(results, stats, chart_dir)
    (output / "benchmarks.md").write_text(markdown(results, stats, drawn))


def markdown(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat], drawn: set[str]
) -> str:
    meta = results["meta"]
    impls = _impls(results)
    dbs = _dbs(results)
    out: list[str] = []
    add = out.append
    add("# Benchmarks: what history costs\n")
    add(
        "Generated by `benchmarks/run.py` — regenerate with `python3 -m nox -s bench` "
        "(PostgreSQL and MariaDB runs need `SQLALCHEMY_HISTORY_POSTGRESQL_URL` and "
        "`SQLALCHEMY_HISTORY_MYSQL_URL`). Do not edit by hand.\n"
    )
    if meta.get("quick"):
        add("> **Quick run** (small sizes, one repetition): a smoke test, not numbers to quote.\n")
    add(
        f"Run of {meta['started']}, {meta['duration_s'] / 60:.1f} minutes, up to {meta['reps']} "
        f"repetition(s) per cell, all implementations interleaved in one run. Each implementation "
        f"runs in its own virtualenv and process, with its own schema (PostgreSQL), database "
        f"(MariaDB) or file (SQLite).\n"
    )
    add("## Headline\n")
    add(
        "Write workloads: time as a multiple of plain SQLAlchemy doing the same writes in the same "
        "run (median of the repetitions; spread in the sections below). Reads with no plain "
        "equivalent: median time. `st`: SQL statements sent to the database in the timed block "
        "(deterministic). Lower is better.\n"
    )
    header = ["workload", "database", *(_label(i, results) for i in impls)]
    add("| " + " | ".join(header) + " |")
    add("|" + "---|" * len(header))
    for workload, w in results["workloads"].items():
        for db in dbs:
            cells = [cell(stats, workload, db, impl, w["plain"]) for impl in impls]
            add(f"| [{w['title']}](#{workload}) | {DB_LABELS[db]} | " + " | ".join(cells) + " |")
    add("")
    add("## Targets (issue #8)\n")
    add("| target | verdict | measured (this tree) |")
    add("|---|---|---|")
    for target, verdict, evidence in targets(results, stats):
        add(f"| {target} | {verdict} | {evidence} |")
    add("")
    add("## Machine and versions\n")
    machine = meta["machine"]
    cpu = f"{machine.get('nproc')} CPUs ({machine.get('cpu', '?')})"
    load = " ".join(machine.get("loadavg_start", []))
    add(
        f"- Machine: {cpu}, {machine.get('ram_gib', '?')} GiB RAM, {machine.get('platform')}; "
        f"load average at start {load}. The database servers run on the same machine."
    )
    add(f"- Python {machine.get('python')}; this tree at commit {meta.get('tree', 'unknown')}.")
    for db in dbs:
        info = meta["databases"][db]
        server = str(info.get("server")).split(" on ")[0]
        add(f"- {DB_LABELS[db]}: {server} (`{info.get('url')}`).")
    for db, reason in meta.get("skipped_databases", {}).items():
        add(f"- {DB_LABELS[db]}: **skipped**, {reason}.")
    for impl in impls:
        info = meta["implementations"][impl]
        drivers = ", ".join(f"{k} {v}" for k, v in sorted(info.get("drivers", {}).items()))
        library = f", library {info['library']}" if info.get("library") else ""
        add(f"- {_label(impl, results)}: SQLAlchemy {info.get('sqlalchemy')}{library}; {drivers}.")
        for db, reason in info.get("skipped_dbs", {}).items():
            add(f"  - **skipped on {DB_LABELS[db]}**: {reason}")
    for impl, reason in meta.get("skipped_implementations", {}).items():
        add(f"- {LABELS[impl].format(version='').strip()}: **skipped**: {reason}")
    add("")
    add("## Method\n")
    add(
        "- Each workload prepares its data outside the timed block, times one block (object "
        "changes and `commit()`), then **checks the database**: row counts of the parent, "
        "version and transaction tables, closed validity rows (`end_transaction_id`), and the "
        "values read back. A run that fails its check is reported as failed, not timed.\n"
        "- Repetitions are interleaved: repetition by repetition, workload by workload, "
        "database by database, each implementation runs once, in an order that rotates."
        + (
            " Before the first, every workload runs once at a small size, untimed, so that "
            "imports, SQLAlchemy's statement caches and the database buffers are warm."
            if meta.get("warmup")
            else ""
        )
        + "\n"
        f"- Up to {meta['reps']} repetitions; where plain SQLAlchemy or this tree took over "
        f"{meta.get('long_threshold_s', 1):.0f} s in a run, {meta.get('long_reps', meta['reps'])}. "
        f"The slow peers stop repeating a cell once its runs took {meta['peer_budget_s']:.0f} s "
        "in all. n in the tables below.\n"
        "- Setup outside the timed block: the rows the update and no-op workloads change, and "
        "the two-transaction history the temporal workloads read, are written with Core in the "
        "layout all three libraries share (parent rows, `transaction` rows, version rows), so "
        "the slow peers' own writes do not dominate the run time; the deep-history, "
        "parent/children and revert workloads build their data through the ORM.\n"
        "- Ratio: median time over the plain SQLAlchemy median of the same database and of "
        "the same repetitions (a peer measured once is compared with plain SQLAlchemy of that "
        "repetition); the range is the implementation's fastest and slowest run over that "
        'same median. "Faster than" compares these ratios, or, for reads without a plain '
        "equivalent, the times of the same repetitions.\n"
        "- Statements: `before_cursor_execute` events on the engine during the timed block (an "
        "executemany batch counts once).\n"
        '- "not supported yet": the implementation lacks the feature; the reason is listed '
        "under the workload. The workload runs as soon as the feature exists.\n"
    )
    for workload, w in results["workloads"].items():
        add(f"## {w['title']}\n")
        add(f'<a id="{workload}"></a>\n')
        if w.get("doc"):
            add(" ".join(w["doc"].split()) + "\n")
        if workload in drawn:
            add(f"![{w['title']}](benchmarks/{workload}.png)\n")
        with_plain = w["plain"]
        head = ["database", "implementation", "median", "min - max", "n"]
        if with_plain:
            head.append("x plain (range)")
        head.append("statements")
        add("| " + " | ".join(head) + " |")
        add("|" + "---|" * len(head))
        notes = []
        for db in dbs:
            for impl in impls:
                stat = stats.get((workload, db, impl))
                if stat is None:
                    continue
                row = [DB_LABELS[db], _label(impl, results)]
                if stat.status != "ok":
                    row += [_status_text(stat), "", str(stat.n)]
                    if with_plain:
                        row.append("")
                    row.append("")
                    notes.append(f"- {_label(impl, results)} on {DB_LABELS[db]}: {stat.detail}")
                else:
                    row += [_ms(stat.median), f"{_ms(stat.low)} - {_ms(stat.high)}", str(stat.n)]
                    if with_plain:
                        r = ratio(stats, workload, db, impl)
                        if impl == "plain" or r is None or not stat.base:
                            row.append("1" if impl == "plain" else "-")
                        else:
                            assert stat.low is not None and stat.high is not None
                            low, high = stat.low / stat.base, stat.high / stat.base
                            row.append(f"{r:.2f}x ({low:.2f}-{high:.2f})")
                    row.append(_count(stat.statements))
                add("| " + " | ".join(row) + " |")
        add("")
        if notes:
            add("\n".join(notes) + "\n")
    return "\n".join(out).rstrip() + "\n"


def draw_charts(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat], chart_dir: Path
) -> set[str]:
    """Draw one grouped bar chart per workload; return the workloads drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn: set[str] = set()
    dbs = _dbs(results)
    for workload, w in results["workloads"].items():
        with_plain = w["plain"]
        # Plain SQLAlchemy is the dashed line at 1 (or absent when it has no equivalent).
        impls = [i for i in _impls(results) if i != "plain"]
        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
        width = 0.8 / max(1, len(impls))
        values_seen: list[float] = []
        for k, impl in enumerate(impls):
            for j, db in enumerate(dbs):
                x = j + (k - (len(impls) - 1) / 2) * width
                stat = stats.get((workload, db, impl))
                if stat is None:
                    continue
                if stat.status != "ok" or stat.median is None:
                    ax.text(
                        x,
                        0.02,
                        _status_text(stat).strip("*"),
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=7,
                        transform=ax.get_xaxis_transform(),
                        color=COLORS[impl],
                    )
                    continue
                if with_plain:
                    if not stat.base:
                        continue
                    scale = stat.base
                    value = stat.median / scale
                    label = f"{value:.2f}x" if value < 10 else f"{value:.0f}x"
                else:
                    scale = 0.001
                    value = stat.median / scale
                    label = f"{value:,.0f} ms"
                assert stat.low is not None and stat.high is not None
                low, high = stat.low / scale, stat.high / scale
                ax.bar(
                    x,
                    value,
                    width,
                    color=COLORS[impl],
                )
                ax.errorbar(
                    x,
                    value,
                    yerr=[[value - low], [high - value]],
                    fmt="none",
                    ecolor="black",
                    elinewidth=0.8,
                    capsize=2,
                )
                ax.text(x, high * 1.05, label, ha="center", va="bottom", fontsize=7)
                values_seen += [low, high]
        if values_seen and max(values_seen) / max(min(values_seen), 1e-9) > 15:
            ax.set_yscale("log")
        if with_plain:
            ax.axhline(1.0, color=COLORS["plain"], linewidth=1, linestyle="--")
            ax.set_ylabel("time / plain SQLAlchemy (median, min-max)")
        else:
            ax.set_ylabel("time in ms (median, min-max)")
        ax.set_xlim(-0.5, len(dbs) - 0.5)
        ax.set_xticks(range(len(dbs)))
        ax.set_xticklabels([DB_LABELS[d] for d in dbs])
        ax.set_title(w["title"], fontsize=10)
        # Legend below the plot, with an entry for implementations that have no bar too.
        handles: list[Any] = [
            Patch(color=COLORS[i], label=_label(i, results, SHORT)) for i in impls
        ]
        if with_plain:
            handles.append(
                Line2D([], [], color=COLORS["plain"], linestyle="--", label="plain SQLAlchemy = 1")
            )
        ax.legend(
            handles=handles,
            fontsize=7,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=len(handles),
            frameon=False,
        )
        if values_seen:
            bottom, top = ax.get_ylim()
            ax.set_ylim(bottom, top * (2.0 if ax.get_yscale() == "log" else 1.12))
        fig.tight_layout()
        fig.savefig(chart_dir / f"{workload}.png")
        plt.close(fig)
        drawn.add(workload)
    return drawn
