"""SPEC §3 under concurrent writers: the short form of the stress run, on every database.

Six writers (threads, then asyncio tasks on aiosqlite / asyncpg / aiomysql) run the
workload of ``workload.py`` for a second and a half per strategy; ``check_history`` then
compares every version, transaction and live row with the ground-truth log. The long form
is ``nox -s stress`` (see ``stress.py``).
"""

from __future__ import annotations

from sqlalchemy_history import versioning_manager

from .conftest import async_engine_for, workload_models
from .ground_truth import GROUND_TRUTH_KINDS
from .workload import RunResult, Settings, run_tasks, run_threads

SETTINGS = Settings(writers=6, seconds=1.5, seed=20240611)


class HistoryAnomalies(AssertionError):
    """The database's history differs from the ground truth."""


def assert_true_history(result: RunResult) -> None:
    # A crash is not an anomaly of history, but it fails the test all the same.
    assert not result.crashed, result.summary()
    assert result.stats.commits > 0, result.summary()
    # Nor is a wrong ground truth (the log disagrees with the live tables).
    assert not result.report.counts.keys() & GROUND_TRUTH_KINDS, result.summary()
    assert len(versioning_manager.units_of_work) == 0
    if result.anomalies:
        raise HistoryAnomalies(result.summary())


def test_concurrent_threads_leave_true_history(versioned, prepared_engine, strategy):
    models = workload_models(versioned, strategy)
    assert_true_history(run_threads(prepared_engine, models, SETTINGS, strategy))


def test_concurrent_asyncio_tasks_leave_true_history(versioned, engine, strategy):
    models = workload_models(versioned, strategy)
    async_engine = async_engine_for(engine, pool_size=SETTINGS.writers + 2)
    assert_true_history(run_tasks(async_engine, models, SETTINGS, strategy))
