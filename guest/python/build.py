"""Builds a Python detector into a WebAssembly component with componentize-py.

    python3 build.py APP OUTPUT [--wit DIR]

APP is the module holding `WitWorld` (`app` for app.py), looked up in the current folder
(the package's; `prelabel` runs a manifest's `build` there) and beside this script, where
the SDK (`prelabel.py`) lives. OUTPUT is the component's path. `--wit` is the folder of
Prelabel's WIT files (default: `wit` in the current folder).

componentize-py is installed, once, into a virtualenv of its own: `$PRELABEL_PYTHON_VENV`,
or `~/.cache/prelabel/componentize-py-VERSION`. Nothing else is installed: the component
holds CPython and the standard library, and no native extensions (numpy has no wasm wheel).
"""

import argparse
import fcntl
import os
import subprocess
import sys
import venv
from pathlib import Path

COMPONENTIZE_PY = "0.25.1"
WORLD = "detector"


def tool_venv() -> Path:
    configured = os.environ.get("PRELABEL_PYTHON_VENV")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "prelabel" / f"componentize-py-{COMPONENTIZE_PY}"


def installed(command: Path) -> bool:
    """Whether `command` is componentize-py at the pinned version."""
    try:
        shown = subprocess.run([command, "--version"], capture_output=True, text=True)
    except OSError:
        return False
    return shown.returncode == 0 and COMPONENTIZE_PY in shown.stdout


def componentize_py() -> Path:
    """The componentize-py command, installed into its virtualenv on first use."""
    home = tool_venv()
    command = home / "bin" / "componentize-py"
    home.parent.mkdir(parents=True, exist_ok=True)
    # Builds may run side by side (tests, several packages): one installs, the others wait.
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed(command):
            print(f"installing componentize-py {COMPONENTIZE_PY} into {home}", file=sys.stderr)
            try:
                venv.create(home, with_pip=True, clear=True)
            except (OSError, subprocess.CalledProcessError) as e:
                sys.exit(
                    f"cannot make a virtualenv at {home} ({e}); "
                    "on Debian, install python3-venv"
                )
            subprocess.run(
                [home / "bin" / "python", "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", f"componentize-py=={COMPONENTIZE_PY}"],
                check=True,
            )
    return command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", help="the module that defines WitWorld (app for app.py)")
    parser.add_argument("output", help="where to write the component")
    parser.add_argument("--wit", default="wit", help="the folder of Prelabel's WIT files")
    args = parser.parse_args()

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    sdk = Path(__file__).resolve().parent
    env = dict(os.environ)
    # The app's imports are what it bundles; a caller's virtualenv must not add to them.
    env.pop("VIRTUAL_ENV", None)
    command = [
        str(componentize_py()), "-d", args.wit, "-w", WORLD, "componentize", args.app,
        "-p", ".", "-p", str(sdk), "-o", str(partial),
    ]
    built = subprocess.run(command, env=env)
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        return built.returncode
    # Renamed into place whole: a watcher never sees half a component.
    partial.replace(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
