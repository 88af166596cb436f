"""Fixtures every folder shares (the tiny model, daemons stopped at the end of a test) and the
rule that the ``slow`` mark follows the folder. The helpers themselves are in
``tests/helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Daemon


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from watcherd.testing import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("tiny-model"), arch="tiny")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
