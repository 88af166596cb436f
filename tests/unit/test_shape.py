"""tools/shape.py, the size, circle and layering checker `make lint` runs, on small packages
written here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def shape() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shape", ROOT / "tools" / "shape.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["shape"] = module
    spec.loader.exec_module(module)
    return module


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "watcherd" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_sizes_circles_and_layers_are_found(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    root = write(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from watcherd import b\n",
        "b.py": "def f() -> None:\n    from watcherd.a import thing\n",
        "big.py": "x = 1\n" * 401,
        "long.py": f"class C:\n    def m(self) -> None:\n{body.replace('    ', '        ')}\n",
        "media/__init__.py": "",
        "media/img.py": "import celery\nfrom ..config import load\n",
        "config.py": "",
    })
    found = [str(f) for f in shape().check(root)]
    assert "watcherd.a -> watcherd.b: import circle" in found, found
    assert any(f.startswith("watcherd/big.py: 401 lines") for f in found), found
    assert any("function C.m: 62 lines" in f for f in found), found
    assert any("imports celery (watcherd.media must not)" in f for f in found), found
    assert any("imports watcherd.config (watcherd.media must not)" in f for f in found), found
    assert len(found) == 5, found


def test_a_clean_package_has_no_findings(tmp_path: Path) -> None:
    root = write(tmp_path, {"__init__.py": "", "a.py": "from watcherd import b\n",
                            "b.py": "import os\n"})
    assert shape().check(root) == []
