#!/usr/bin/env python3
"""Set-up and everyday commands, needing only Python >= 3.11 and pip.

    python3 dev.py run [ARGS...]   create .venv, install smartbatt with the GUI, start the app
                                   on an emulated pack (terminal monitor when there is no display)
    python3 dev.py test [PYTEST ARGS...]
                                   create .venv, install with the test tools, then run ruff,
                                   mypy, the test suite (Qt offscreen) and the wheel check

The virtual environment lives in ``.venv`` beside this file and is reinstalled only when
``pyproject.toml`` changes. Every step prints what it runs; the first failure stops the run with
its exit code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def step(title: str, cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
    print(f"\n== {title}: {' '.join(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=cwd, env=env, check=False)
    if result.returncode != 0:
        print(f"== {title} failed (exit {result.returncode})", flush=True)
        sys.exit(result.returncode)


def _digest(extras: str) -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()


def ensure_venv(extras: str, *, satisfied_by: tuple[str, ...] = ()) -> None:
    """Create .venv and install smartbatt[extras] editable, once per pyproject.toml version.

    ``satisfied_by``: larger extras sets whose installation also covers ``extras`` (after
    ``dev.py test`` installed gui+test, ``dev.py run`` needs nothing more).
    """
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit("smartbatt needs Python 3.11 or newer")
    stamp = VENV / ".smartbatt-installed"
    installed = stamp.read_text() if stamp.exists() and PY.exists() else ""
    if installed in {_digest(x) for x in (extras, *satisfied_by)}:
        return
    if not PY.exists():
        print(f"== creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    step("upgrade pip", [str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    step("install", [str(PY), "-m", "pip", "install", "-q", "-e", f".[{extras}]"])
    stamp.write_text(_digest(extras))


def has_display() -> bool:
    if os.name == "nt" or sys.platform == "darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_run(args: list[str]) -> None:
    ensure_venv("gui", satisfied_by=("gui,test",))
    if has_display():
        cmd = [str(BIN / "smartbatt-gui"), *args]
    else:
        print("No display found: starting the terminal monitor on the emulated pack instead of the GUI.")
        cmd = [str(BIN / "smartbatt"), *args, "monitor"]
    os.execv(cmd[0], cmd) if os.name != "nt" else sys.exit(subprocess.call(cmd))


def wheel_check() -> None:
    """Build a wheel (not editable), install it in a fresh venv outside the checkout, run it."""
    with tempfile.TemporaryDirectory(prefix="smartbatt-wheel-") as tmp:
        tmpdir = Path(tmp)
        step("build wheel", [str(PY), "-m", "build", "--wheel", "--outdir", str(tmpdir / "dist"), str(ROOT)])
        wheel = next((tmpdir / "dist").glob("smartbatt-*.whl"))
        fresh = tmpdir / "venv"
        venv.EnvBuilder(with_pip=True).create(fresh)
        fresh_bin = fresh / ("Scripts" if os.name == "nt" else "bin")
        step("install wheel in a fresh venv", [str(fresh_bin / "python"), "-m", "pip", "install", "-q", str(wheel)])
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        step("smartbatt info from the wheel", [str(fresh_bin / "smartbatt"), "info"], env=env, cwd=tmpdir)
        step(
            "wheel carries profiles and GUI",
            [
                str(fresh_bin / "python"),
                "-c",
                "import importlib.resources as r, gui, firmware_profiles;"
                "names = sorted(p.name for p in r.files('firmware_profiles').iterdir() if p.name.endswith('.toml'));"
                "print('profiles:', names); assert names, 'no profiles in the wheel'",
            ],
            env=env,
            cwd=tmpdir,
        )


def postgres_available() -> bool:
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return True
    return any((bindir / "initdb").exists() for bindir in Path("/usr/lib/postgresql").glob("*/bin"))


def ensure_postgres() -> None:
    """The factory tests need a real PostgreSQL server; in CI install Debian's package if absent.

    Outside CI the PostgreSQL tests skip with an install hint instead, so a developer's machine is
    never changed behind their back.
    """
    if not os.environ.get("CI") or postgres_available():
        return
    if not shutil.which("apt-get") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        sys.exit("PostgreSQL is needed for the factory tests: run `apt-get install -y postgresql` as root")
    step("apt-get update", ["apt-get", "update", "-q"])
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    step("install postgresql", ["apt-get", "install", "-y", "-q", "postgresql"], env=env)


def cmd_test(args: list[str]) -> None:
    ensure_venv("gui,test")
    ensure_postgres()
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    step("ruff", [str(PY), "-m", "ruff", "check", "."])
    step("mypy", [str(PY), "-m", "mypy"])
    step("pytest", [str(PY), "-m", "pytest", *args], env=env)
    if not args:
        wheel_check()
    print("\n== all checks passed", flush=True)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test"):
        print(__doc__)
        sys.exit(2)
    {"run": cmd_run, "test": cmd_test}[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
