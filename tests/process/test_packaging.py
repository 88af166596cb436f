"""A built wheel (not only the editable checkout) carries what `watcherd install-systemd` needs:
the unit templates and the example config, as real files under watcherd/data/."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_units_and_example_config(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", str(ROOT), "-w", str(tmp_path)], check=True, capture_output=True,
                   timeout=300)
    (wheel,) = tmp_path.glob("watcherd-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    data = site / "watcherd" / "data"
    for name in ("watcherd.service", "watcherd-thumbnails.service",
                 "watcherd-embeddings.service", "watcherd.sysusers"):
        packaged = data / "systemd" / name
        assert not packaged.is_symlink()
        assert packaged.read_bytes() == (ROOT / "systemd" / name).read_bytes(), name
    assert (data / "config.example.toml").read_bytes() == (
        ROOT / "config.example.toml").read_bytes()
    # Rendered from the wheel's copy, in a process that imports watcherd from the wheel.
    code = ("import watcherd.install as i; print(i.__file__); "
            "print(i.render_units('/opt/w/bin/watcherd', read_only_paths=[])['watcherd.service'])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    first, _, unit = out.stdout.partition("\n")
    assert first.startswith(str(site)), first
    assert "ExecStart=/opt/w/bin/watcherd" in unit and "@WATCHERD@" not in unit, unit
