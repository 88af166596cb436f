"""A daemon told to stop while it starts (here: the embedding worker importing torch and loading
its model, before Celery installs its signal handlers) stops cleanly, exit 0, like one told to
stop once it runs. A real `watcherd worker embeddings` process and a real SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.helpers import Daemon, wait_for, write_config


def test_sigterm_while_the_model_loads_exits_0(tmp_path: Path, tiny_model: str,
                                               daemons: list[Daemon]) -> None:
    config = write_config(tmp_path, model=tiny_model)
    worker = Daemon(config, "worker", "embeddings").start()
    daemons.append(worker)
    assert worker.proc is not None
    wait_for(lambda: "loading the embedding model" in worker.log(), 60, "the model load to start")
    assert "embedding model loaded" not in worker.log()  # still starting: torch is importing
    worker.proc.send_signal(signal.SIGTERM)
    code = worker.stop(timeout=60)
    assert code == 0, worker.log()[-3000:]
    assert "Traceback" not in worker.log(), worker.log()[-3000:]
