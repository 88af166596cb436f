"""Fixtures every folder shares (the tiny model, daemons stopped at the end of a test), and the
rule that the ``slow`` mark follows the folder. The helpers themselves are in
``tests/helpers.py``.

The folders, fastest first:

- ``unit/``: in-process (no subprocess, no broker, no wait over a second; its conftest fails a
  test that tries);
- ``process/``: real processes of our own that end by themselves (the ``watcherd`` commands,
  spawned spool consumers, ``pip wheel``, ``strace``), no broker and no daemon;
- ``web/``: ``watcherd serve`` over HTTP and in a browser;
- ``integration/``: the brokers, and daemons for a few seconds;
- ``daemon/``: full ``watcherd run`` pipelines end to end, fleets, remote workers;
- ``reliability/``: faults, hangs, poison messages and load, against real daemons;
- ``systemd/``: the units under a real systemd in a container.

``make quick`` (``pytest -m "not slow"``) runs the first four; ``make test`` runs them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401 - see below
import pytest

from tests.helpers import Daemon

# hypothesis is imported here, at start-up, and not by its pytest plugin's end-of-run summary
# (which it does when no test imported it): on CPython 3.11 that late import, through pytest's
# assertion rewriting (ast.parse), failed with "SystemError: AST constructor recursion depth
# mismatch" after tests/integration run alone (3 runs of 3; python/cpython#106905), and the run
# exited 1 with every test passed.

TESTS = Path(__file__).parent
SLOW_FOLDERS = frozenset({"daemon", "reliability", "systemd"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under a slow folder is marked ``slow``, so the mark never depends on someone
    remembering it."""
    for item in items:
        try:
            folder = item.path.relative_to(TESTS).parts[0]
        except ValueError:  # a test outside tests/ (pytest given another path)
            continue
        if folder in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from watcherd.testing import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("tiny-model"), arch="tiny")


LOG_TAIL_LINES = 150  # of each daemon's log, shown with a failing test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test that ran daemons shows the end of their logs: pytest keeps only the last
    three runs' temporary folders, so a failure seen in a long run is explained by its report
    alone (CI's output), not by a log rotated away since."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for d in getattr(item, "watcherd_daemons", []):
        try:
            lines = d.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        report.sections.append((f"daemon {' '.join(d.args)} ({d.log_path.name}, last "
                                f"{LOG_TAIL_LINES} lines)", "\n".join(lines[-LOG_TAIL_LINES:])))


@pytest.fixture
def daemons(request: pytest.FixtureRequest) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    request.node.watcherd_daemons = started
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
