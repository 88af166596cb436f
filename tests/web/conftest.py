from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def dead_end(tmp_path: Path) -> Path:
    return tmp_path
