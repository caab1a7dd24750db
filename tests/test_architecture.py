"""The import rules of ARCHITECTURE.md, checked on the source so they cannot silently erode."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "smartbatt"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(subpackage: str = "") -> list[Path]:
    root = PACKAGE / subpackage if subpackage else PACKAGE
    return sorted(root.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_library_never_imports_qt_or_the_gui(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "gui")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("emulator"), ids=lambda p: p.name)
def test_the_emulator_never_imports_a_transport(path: Path) -> None:
    bad = {m for m in _imports(path) if m.startswith("smartbatt.transports")}
    assert not bad, f"emulator/{path.name} imports {sorted(bad)}: the device side must not know the wire"


TRANSPORT_MAY_IMPORT = ("smartbatt.errors", "smartbatt.pec", "smartbatt.uri", "smartbatt.transports")
#: the in-process wire reaches the device side through these (and builds devices lazily).
EMULATED_WIRE_EXTRA = ("smartbatt.emulator.target", "smartbatt.emulator.faults", "smartbatt.emulator")


@pytest.mark.parametrize("path", _modules("transports"), ids=lambda p: p.name)
def test_transports_import_only_the_base_modules(path: Path) -> None:
    allowed = TRANSPORT_MAY_IMPORT + (EMULATED_WIRE_EXTRA if path.name == "emulated.py" else ())
    own = {m for m in _imports(path) if m.startswith("smartbatt")}
    bad = {m for m in own if not any(m == a or m.startswith(a + ".") for a in allowed)}
    assert not bad, f"transports/{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("sub", ["sbs", "pmbus", "profiles", "gauge", "transports", "emulator"])
def test_lower_layers_never_import_the_clients(sub: str) -> None:
    clients = ("smartbatt.cli", "smartbatt.monitor", "smartbatt.factory")
    for path in _modules(sub):
        bad = {m for m in _imports(path) if m.startswith(clients)}
        assert not bad, f"{sub}/{path.name} imports {sorted(bad)}"
