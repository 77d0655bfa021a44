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
    "ideal": "ideal recorder (lower bound)",
    "ours": "sqlalchemy-history (this tree)",
    "history": "SQLAlchemy-History {version}",
    "continuum": "SQLAlchemy-Continuum {version}",
}
SHORT = {
    "plain": "plain",
    "ideal": "ideal",
    "ours": "this tree",
    "history": "History {version}",
    "continuum": "Continuum {version}",
}
DB_LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}
COLORS = {
    "plain": "#9e9e9e",
    "ideal": "#dfc27d",
    "ours": "#1b7837",
    "history": "#2166ac",
    "continuum": "#b2182b",
}
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
#: Issue #15: write workloads within this factor of the ideal recorder's ratio to plain.
IDEAL_TARGETS = (
    "commits",
    "tag_commits",
    "parent_children",
    "update_validity",
    "update_subquery",
    "insert",
    "noop",
)
IDEAL_FACTOR = 1.15
#: Issue #15: scale workloads (and recorded bulk statements) at most this times plain.
SCALE_LIMIT = 2.5
#: Per-row time at the largest scale size over the smallest: at most this is "linear".
LINEAR_LIMIT = 1.5
SCALE_OPS = ("scale_insert", "scale_update", "scale_delete")
#: Issue #15: concurrent writers' commits per second at least this fraction of plain.
THROUGHPUT_FLOOR = 0.6
MEMORY_LIMIT = 1.3
#: selectinload() sends the parent keys in IN lists of this many (SQLAlchemy's default).
SELECTIN_BATCH = 500


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
    #: The first run's further results (throughput: commits, retries, ...).
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def metric(results: dict[str, Any], workload: str) -> str:
    """ "time", "memory" or "throughput" (results of older runs: "time")."""
    return str(results["workloads"][workload].get("metric", "time"))


def _value(run: dict[str, Any]) -> float:
    """What a run measured: peak bytes (memory), else seconds (per commit: throughput)."""
    return float(run["peak_bytes"] if "peak_bytes" in run else run["seconds"])


EXTRA_KEYS = ("commits", "commits_per_s", "retries", "writers", "duration_s", "peak_bytes")


def aggregate(results: dict[str, Any]) -> dict[tuple[str, str, str], Stat]:
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in results["runs"]:
        grouped.setdefault((run["workload"], run["db"], run["impl"]), []).append(run)
    stats: dict[tuple[str, str, str], Stat] = {}
    for key, runs in grouped.items():
        bad = [r for r in runs if r["status"] != "ok"]
        if bad:
            stats[key] = Stat(
                bad[0]["status"],
                key[2],
                n=len(runs),
                detail=bad[0].get("detail"),
                extra={k: bad[0][k] for k in EXTRA_KEYS if k in bad[0]},
            )
            continue
        seconds = [_value(r) for r in runs]
        counts = [r["statements"] for r in runs]
        stats[key] = Stat(
            "ok",
            key[2],
            n=len(runs),
            median=statistics.median(seconds),
            low=min(seconds),
            high=max(seconds),
            statements=(min(counts), max(counts)),
            by_rep={r["rep"]: _value(r) for r in runs},
            extra={k: runs[0][k] for k in EXTRA_KEYS if k in runs[0]},
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
        for i in ("plain", "ideal", "ours", "history", "continuum")
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
        return "not run"
    if stat.status == "unsupported" and stat.impl in PEERS:
        return "not supported"  # a released library: no "yet" about it
    return {
        "unsupported": "not supported yet",
        "failed": "**failed check**",
        "error": "**error**",
        "timeout": "**timeout**",
    }.get(stat.status, stat.status)


def _mib(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 2**20:,.1f} MiB"


def _retries(stat: Stat) -> int:
    return sum(dict(stat.extra.get("retries") or {}).values())


def _throughput(stat: Stat) -> str:
    retries = stat.extra.get("retries") or {}
    what = ", ".join(f"{n} {kind}" for kind, n in retries.items()) or "none"
    return f"{stat.extra.get('commits_per_s', 0):,.0f} commits/s (retries: {what})"


def cell(
    stats: dict[tuple[str, str, str], Stat],
    workload: str,
    db: str,
    impl: str,
    with_plain: bool,
    kind: str = "time",
) -> str:
    """Headline cell: ratio to plain (or time when there is no plain) and statements;
    peak memory for memory workloads, commits per second for throughput ones."""
    stat = stats.get((workload, db, impl))
    if stat is None or stat.status != "ok":
        return _status_text(stat)
    r = ratio(stats, workload, db, impl) if impl != "plain" else None
    if kind == "memory":
        return _mib(stat.median) if r is None else f"**{r:.2f}x** · {_mib(stat.median)}"
    if kind == "throughput":
        shown = f"{stat.extra.get('commits_per_s', 0):,.0f}/s · {_retries(stat)} retries"
        return shown if r is None else f"**{1 / r:.2f}x** · {shown}"
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
    for workload, loader in (("temporal_eager", "selectinload"), ("temporal_joined", "joinedload")):
        if workload not in results["workloads"]:
            continue
        size = results["workloads"][workload]["size"]
        limit = 1 + -(-size // SELECTIN_BATCH) if loader == "selectinload" else 1
        evidence, ok = [], True
        for db in _dbs(results):
            stat = stats.get((workload, db, "ours"))
            if stat is None or stat.statements is None:
                evidence.append(f"{DB_LABELS[db]}: {_status_text(stat)}")
                ok = False
            else:
                evidence.append(f"{DB_LABELS[db]} {_count(stat.statements)}")
                ok = ok and stat.statements[1] <= limit
        bound = (
            f"1 + ceil({size:,} / {SELECTIN_BATCH}) = {limit} queries (SQLAlchemy's "
            f"selectinload batch of {SELECTIN_BATCH} keys)"
            if loader == "selectinload"
            else "1 query"
        )
        title = results["workloads"][workload]["title"]
        rows.append((f"{title}: ≤ {bound}", _verdict(ok), "; ".join(evidence)))
    if "deep_history" in results["workloads"]:
        evidence, ok = [], True
        for db in _dbs(results):
            pair = versus(stats, "deep_history", db, "history")
            if pair is None:
                continue  # the released library did not run here
            mine, theirs, _ = pair
            ok = ok and mine < theirs
            evidence.append(f"{DB_LABELS[db]} {_ms(mine)} vs {_ms(theirs)}")
        if evidence:
            rows.append(
                (
                    "Deep history read faster than SQLAlchemy-History 2.2.1 on every database",
                    _verdict(ok),
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
    rows += _ideal_targets(results, stats)
    rows += _scale_targets(results, stats)
    rows += _concurrency_targets(results, stats)
    rows += _memory_targets(results, stats)
    return rows


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _ideal_targets(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat]
) -> list[tuple[str, str, str]]:
    """Write workloads: this tree's ratio to plain within IDEAL_FACTOR of the ideal's."""
    rows = []
    for workload in IDEAL_TARGETS:
        if workload not in results["workloads"]:
            continue
        evidence, ok = [], True
        for db in _dbs(results):
            mine, ideal = ratio(stats, workload, db, "ours"), ratio(stats, workload, db, "ideal")
            if mine is None or ideal is None:
                evidence.append(
                    f"{DB_LABELS[db]}: this tree {_status_text(stats.get((workload, db, 'ours')))}"
                    if mine is None
                    else f"{DB_LABELS[db]}: ideal not measured"
                )
                ok = False
                continue
            factor = mine / ideal
            ours, best = stats[(workload, db, "ours")], stats[(workload, db, "ideal")]
            extra = ""
            if ours.statements and best.statements:
                extra = f", {ours.statements[1] - best.statements[1]:+,} statements"
            evidence.append(f"{DB_LABELS[db]} {mine:.2f}x vs {ideal:.2f}x = {factor:.2f}{extra}")
            ok = ok and factor <= IDEAL_FACTOR
        title = results["workloads"][workload]["title"]
        rows.append(
            (
                f"{title}: within {IDEAL_FACTOR}x of the ideal recorder's ratio to plain",
                _verdict(ok),
                "; ".join(evidence),
            )
        )
    return rows


def _scale_targets(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat]
) -> list[tuple[str, str, str]]:
    rows = []
    for op in SCALE_OPS:
        names = sorted(
            (w for w in results["workloads"] if w.startswith(op + "_")),
            key=lambda w: results["workloads"][w]["size"],
        )
        if not names:
            continue
        sizes = [results["workloads"][w]["size"] for w in names]
        evidence, ok = [], True
        for db in _dbs(results):
            ratios = [ratio(stats, w, db, "ours") for w in names]
            if any(r is None for r in ratios):
                evidence.append(f"{DB_LABELS[db]}: not measured at every size")
                ok = False
                continue
            shown = " / ".join(f"{r:.2f}x" for r in ratios if r is not None)
            ok = ok and all(r is not None and r <= SCALE_LIMIT for r in ratios)
            growth = ""
            first, last = stats[(names[0], db, "ours")], stats[(names[-1], db, "ours")]
            if len(names) > 1 and first.median and last.median:
                per_row = (last.median / sizes[-1]) / (first.median / sizes[0])
                growth = f", time per row x{per_row:.2f} from {sizes[0]:,} to {sizes[-1]:,} rows"
                ok = ok and per_row <= LINEAR_LIMIT
            evidence.append(f"{DB_LABELS[db]} {shown}{growth}")
        label = " / ".join(f"{n:,}" for n in sizes)
        verb = {"scale_insert": "inserting", "scale_update": "updating"}.get(op, "deleting")
        rows.append(
            (
                f"One flush {verb} N composite-key rows and N links, N = {label}: "
                f"≤ {SCALE_LIMIT}x plain, linear (time per row grows ≤ {LINEAR_LIMIT}x)",
                _verdict(ok),
                "; ".join(evidence),
            )
        )
    for workload in ("bulk_update", "cascade_delete"):
        if workload not in results["workloads"]:
            continue
        evidence, ok = [], True
        for db in _dbs(results):
            r = ratio(stats, workload, db, "ours")
            evidence.append(f"{DB_LABELS[db]} {r:.2f}x" if r is not None else f"{DB_LABELS[db]} -")
            ok = ok and r is not None and r <= SCALE_LIMIT
        title = results["workloads"][workload]["title"]
        rows.append((f"{title}: ≤ {SCALE_LIMIT}x plain", _verdict(ok), "; ".join(evidence)))
    return rows


def _concurrency_targets(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat]
) -> list[tuple[str, str, str]]:
    rows = []
    for workload, meta in results["workloads"].items():
        if meta.get("metric") != "throughput":
            continue
        evidence, ok = [], True
        for db in _dbs(results):
            if db not in meta.get("databases", [db]):
                continue
            ours = stats.get((workload, db, "ours"))
            r = ratio(stats, workload, db, "ours")
            if ours is None or r is None:
                evidence.append(f"{DB_LABELS[db]}: {_status_text(ours)}")
                ok = False
                continue
            ok = ok and 1 / r >= THROUGHPUT_FLOOR
            parts = [f"{DB_LABELS[db]} {1 / r:.2f}x plain, {_throughput(ours)}"]
            for peer in PEERS:
                other = stats.get((workload, db, peer))
                if other is not None and other.status == "failed":
                    parts.append(
                        f"{_label(peer, results, SHORT)} {_throughput(other)}, but its history "
                        f"failed the check ({other.detail})"
                    )
                if other is None or other.status != "ok" or not other.median:
                    continue
                ahead = other.median > (ours.median or 0)
                ok = ok and ahead
                parts.append(
                    f"{_label(peer, results, SHORT)} {_throughput(other)}"
                    + ("" if ahead else " (ahead of this tree)")
                )
            evidence.append("; ".join(parts))
        if not evidence:
            continue  # run on no database of this run
        rows.append(
            (
                f"{meta['title']}: commits/s ≥ {THROUGHPUT_FLOOR}x plain and ahead of both "
                "released libraries",
                _verdict(ok),
                " — ".join(evidence),
            )
        )
    return rows


def _memory_targets(
    results: dict[str, Any], stats: dict[tuple[str, str, str], Stat]
) -> list[tuple[str, str, str]]:
    rows = []
    for workload, meta in results["workloads"].items():
        if meta.get("metric") != "memory":
            continue
        evidence, ok = [], True
        for db in _dbs(results):
            r = ratio(stats, workload, db, "ours")
            ours = stats.get((workload, db, "ours"))
            if r is None or ours is None:
                evidence.append(f"{DB_LABELS[db]}: {_status_text(ours)}")
                ok = False
                continue
            ok = ok and r <= MEMORY_LIMIT
            evidence.append(f"{DB_LABELS[db]} {r:.2f}x ({_mib(ours.median)})")
        rows.append(
            (f"{meta['title']}: ≤ {MEMORY_LIMIT}x plain", _verdict(ok), "; ".join(evidence))
        )
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
        kind = meta.get("metric", "time")
        for db in _dbs(results):
            if db not in meta.get("databases", [db]):
                continue
            cells = []
            for impl in impls:
                stat = stats.get((workload, db, impl))
                if stat is None:
                    cells.append("-")
                elif stat.status != "ok":
                    cells.append(stat.status.upper())
                elif kind != "time":
                    cells.append(cell(stats, workload, db, impl, True, kind).replace("*", ""))
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
    (output / "benchmarks" if charts else output).mkdir(parents=True, exist_ok=True)
    (output / "benchmarks" if charts else output).joinpath("readme-table.md").write_text(
        readme_table(results, stats)
    )


#: The workloads of README's short table (the everyday paths first).
README_WORKLOADS = (
    "commits",
    "tag_commits",
    "update_validity",
    "insert",
    "deep_history",
    "temporal_eager",
    "concurrent_disjoint",
)


def readme_table(results: dict[str, Any], stats: dict[tuple[str, str, str], Stat]) -> str:
    """README's headline: this tree, the ideal recorder and SQLAlchemy-History per database.

    Written next to the charts as ``readme-table.md``; README.md carries a copy of it.
    """
    dbs = _dbs(results)
    impls = [i for i in ("ideal", "ours", "history") if i in _impls(results)]
    lines = [
        f"Each cell: {_short_impls(results, impls)}, as multiples of plain SQLAlchemy's time "
        "(concurrent writers: of its commits per second); reads without a plain equivalent "
        "in ms.",
        "",
        "| workload | " + " | ".join(DB_LABELS[d] for d in dbs) + " |",
        "|---|" + "---|" * len(dbs),
    ]
    for workload in README_WORKLOADS:
        w = results["workloads"].get(workload)
        if w is None:
            continue
        kind = w.get("metric", "time")
        cells = []
        for db in dbs:
            if db not in w.get("databases", dbs):
                cells.append("not run")
                continue
            shown = []
            for impl in impls:
                stat = stats.get((workload, db, impl))
                if stat is None or stat.status != "ok":
                    shown.append("-")
                    continue
                r = ratio(stats, workload, db, impl) if w["plain"] else None
                if r is None:
                    shown.append(_ms(stat.median))
                elif kind == "throughput":
                    shown.append(f"{1 / r:.2f}")
                else:
                    shown.append(f"{r:.2f}")
            cells.append(" / ".join(shown))
        lines.append(f"| {w['title']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _short_impls(results: dict[str, Any], impls: list[str]) -> str:
    return " / ".join(_label(i, results, SHORT) for i in impls)


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
        "(deterministic). Lower is better. Peak memory rows: peak Python allocations as a "
        "multiple of plain's (lower is better). Concurrent writers: commits per second as a "
        "fraction of plain's (**higher** is better), with the deadlock and lock retries. "
        "The ideal recorder (`benchmarks/ideal.py`) is a lower bound, not a library: one "
        "transaction row and one version row per change, from memory, nothing read, nothing "
        "closed, nothing checked.\n"
    )
    header = ["workload", "database", *(_label(i, results) for i in impls)]
    add("| " + " | ".join(header) + " |")
    add("|" + "---|" * len(header))
    for workload, w in results["workloads"].items():
        kind = w.get("metric", "time")
        for db in dbs:
            if db not in w.get("databases", dbs):
                continue
            cells = [
                cell(stats, workload, db, impl, w["plain"], kind)
                if impl in w.get("impls", impls)
                else "not run"
                for impl in impls
            ]
            add(f"| [{w['title']}](#{workload}) | {DB_LABELS[db]} | " + " | ".join(cells) + " |")
    add("")
    add("## Targets\n")
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
        "- The ideal recorder (`benchmarks/ideal.py`, in plain SQLAlchemy's virtualenv) is the "
        "yardstick for write workloads: per transaction one `transaction` row, per flush and "
        "table one executemany INSERT of version rows built from memory; it reads nothing, "
        "closes nothing and checks nothing, so it is a lower bound, not a correct library "
        "(its runs are checked for the rows it writes).\n"
        "- Scale workloads (composite keys, many-to-many links) and peak memory run plain "
        "SQLAlchemy, the ideal recorder and this tree only. Peak memory is the peak of "
        "Python's allocations traced by `tracemalloc` during the flush and commit (one run; "
        "the objects exist before it).\n"
        "- Concurrent writers (PostgreSQL and MariaDB): 16 threads, each with its own Session "
        "per commit, for 20 s; commits per second over plain SQLAlchemy's (higher is better); "
        "a deadlock, serialization failure or lock timeout is rolled back, counted and "
        "retried; the history is then checked against the writers' own log of what "
        "committed.\n"
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
        kind = w.get("metric", "time")
        show: Any = {"memory": _mib}.get(kind, _ms)
        head = ["database", "implementation"]
        head += {
            "memory": ["peak allocations", "min - max", "n"],
            "throughput": ["time per commit", "commits/s (retries)", "n"],
        }.get(kind, ["median", "min - max", "n"])
        if with_plain:
            head.append("x plain (range)" if kind != "throughput" else "commits/s x plain")
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
                    spread = (
                        _throughput(stat)
                        if kind == "throughput"
                        else f"{show(stat.low)} - {show(stat.high)}"
                    )
                    row += [show(stat.median), spread, str(stat.n)]
                    if with_plain:
                        r = ratio(stats, workload, db, impl)
                        if impl == "plain" or r is None or not stat.base:
                            row.append("1" if impl == "plain" else "-")
                        elif kind == "throughput":
                            row.append(f"{1 / r:.2f}x")
                        else:
                            assert stat.low is not None and stat.high is not None
                            low, high = stat.low / stat.base, stat.high / stat.base
                            row.append(f"{r:.2f}x ({low:.2f}-{high:.2f})")
                    row.append(_count(stat.statements))
                add("| " + " | ".join(row) + " |")
        add("")
        if w.get("why_not"):
            missing = [i for i in impls if i not in w.get("impls", impls)]
            if missing:
                names = ", ".join(_label(i, results) for i in missing)
                notes.append(f"- Not run by {names}: {w['why_not']}.")
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
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    for workload, w in results["workloads"].items():
        with_plain = w["plain"]
        kind = w.get("metric", "time")
        dbs = [d for d in _dbs(results) if d in w.get("databases", _dbs(results))]
        # Plain SQLAlchemy is the dashed line at 1 (or absent when it has no equivalent).
        impls = [i for i in _impls(results) if i != "plain" and i in w.get("impls", [i])]
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
                assert stat.low is not None and stat.high is not None
                if with_plain:
                    if not stat.base:
                        continue
                    scale = stat.base
                    value = stat.median / scale
                    low, high = stat.low / scale, stat.high / scale
                    if kind == "throughput":  # commits/s over plain's: higher is better
                        value, low, high = 1 / value, 1 / high, 1 / low
                    label = f"{value:.2f}x" if value < 10 else f"{value:.0f}x"
                else:
                    scale = 0.001
                    value = stat.median / scale
                    low, high = stat.low / scale, stat.high / scale
                    label = f"{value:,.0f} ms"
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
        unit = "x" if with_plain else " ms"
        if values_seen and max(values_seen) / max(min(values_seen), 1e-9) > 15:
            # A log axis with a labelled tick at every 1-2-5 step of the range.
            ax.set_yscale("log")
            low_tick = min(values_seen + ([1.0] if with_plain else [])) / 1.5
            ticks = [
                m * 10.0**e
                for e in range(-3, 7)
                for m in (1, 2, 5)
                if low_tick <= m * 10.0**e <= max(values_seen) * 2.5
            ]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _, u=unit: f"{v:,.4g}{u}"))
        if with_plain:
            ax.axhline(1.0, color=COLORS["plain"], linewidth=1, linestyle="--")
            ax.set_ylabel(
                {
                    "memory": "peak allocations / plain SQLAlchemy",
                    "throughput": "commits per second / plain SQLAlchemy (higher is better)",
                }.get(kind, "time / plain SQLAlchemy (median, min-max)")
            )
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
