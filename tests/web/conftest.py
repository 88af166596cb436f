from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.web.weblib import Lib, Serve, build


@pytest.fixture(scope="package")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Lib:
    return build(tmp_path_factory.mktemp("web"), tiny_model)


@pytest.fixture(scope="package")
def server(library: Lib) -> Iterator[Serve]:
    s = Serve(library.config).wait_ready()
    yield s
    s.stop()


@pytest.fixture(scope="package")
def token_library(tmp_path_factory: pytest.TempPathFactory, tiny_model: str) -> Lib:
    return build(tmp_path_factory.mktemp("web-token"), tiny_model, token="s3cret-token",
                 photos=8)


@pytest.fixture(scope="package")
def token_server(token_library: Lib) -> Iterator[Serve]:
    s = Serve(token_library.config).wait_ready()
    yield s
    s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item, so a fixture can see that its test failed
    (the browser tests save a screenshot then)."""
    outcome = yield
    with contextlib.suppress(Exception):
        rep = outcome.get_result()  # type: ignore[attr-defined]
        setattr(item, "rep_" + rep.when, rep)
