"""The app Celery's own tools load (``celery -A watcherd …``): built lazily from
``$WATCHERD_CONFIG``, a readable error when it cannot be."""

from __future__ import annotations

from pathlib import Path

import pytest

import watcherd
from tests.helpers import BROKERS, write_config
from watcherd.broker import celery_cli
from watcherd.broker.app import events_enabled
from watcherd.config import load


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(celery_cli, "_app", None)


def test_no_config_says_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHERD_CONFIG", raising=False)
    with pytest.raises(AttributeError, match=r"\$WATCHERD_CONFIG is not set"):
        _ = watcherd.celery
    assert not hasattr(watcherd, "app")


def test_a_bad_config_names_the_key_and_the_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, broker_url=BROKERS["amqp"], broker={"task_events": "yes"})
    monkeypatch.setenv("WATCHERD_CONFIG", str(config))
    with pytest.raises(AttributeError) as info:
        _ = watcherd.celery
    assert str(config) in str(info.value) and "broker.task_events" in str(info.value)


def test_the_embedded_broker_says_what_works_instead(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHERD_CONFIG", str(write_config(tmp_path)))
    with pytest.raises(AttributeError, match=r"embedded broker.*`watcherd status`"):
        _ = watcherd.app


@pytest.mark.parametrize("broker", ["amqp", "redis"])
def test_the_app_matches_the_workers(broker: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, broker_url=BROKERS[broker])
    monkeypatch.setenv("WATCHERD_CONFIG", str(config))
    app = watcherd.celery
    assert watcherd.app is app  # built once
    prefix = load(config).broker.queue_prefix
    assert app.conf.broker_url == BROKERS[broker]
    assert (app.conf.control_exchange, app.conf.event_exchange) == (
        f"{prefix}celery", f"{prefix}celeryev")
    assert {q.name for q in app.conf.task_queues} == {f"{prefix}thumbnails",
                                                      f"{prefix}embeddings"}
    assert app.conf.worker_send_task_events and app.conf.worker_enable_remote_control


def test_a_remote_workers_config_is_enough(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU box the config holds only [broker] and [embeddings]: the tools work there too."""
    config = tmp_path / "remote.toml"
    config.write_text(f'[broker]\nurl = "{BROKERS["redis"]}"\n[embeddings]\nmodel = "x"\n')
    monkeypatch.setenv("WATCHERD_CONFIG", str(config))
    assert watcherd.celery.conf.broker_url == BROKERS["redis"]


def test_task_events_follow_the_config_and_are_never_on_for_the_spool(tmp_path: Path) -> None:
    on = load(write_config(_mk(tmp_path / "a"), broker_url=BROKERS["redis"]))
    off = load(write_config(_mk(tmp_path / "b"), broker_url=BROKERS["redis"],
                                  broker={"task_events": False}))
    spool = load(write_config(_mk(tmp_path / "c")))
    assert (events_enabled(on), events_enabled(off), events_enabled(spool)) == (
        True, False, False)


def _mk(folder: Path) -> Path:
    folder.mkdir()
    return folder
