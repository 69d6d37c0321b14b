"""Cold start on Python 3.13 with Azure's execution runtime against Python 3.11, paired.

    .venv/bin/python -m bench.python_versions [--runs 15]

Ahoy runs on 3.13 (azure-functions 2.x, azure-functions-runtime); 3.11 is what it ran on
before (azure-functions 1.x, the worker indexing the app itself). Each round starts one fresh
process of each, back to back, so both see the machine as it is at that moment; the figures
are medians and the ratio is the median of the rounds' ratios. A 3.11 venv with Ahoy's
requirements (azure-functions 1.x, no runtime) is made once in .venv-bench311 from pyenv's 3.11.

- import: `import function_app`, after azure.functions (what the worker imports first);
- ready: what a worker does before the first invocation: on 3.13 the runtime's init (import
  and index, every annotation checked) and function loads, through devhost.runtime; on 3.11
  the app imported and `get_functions()` indexed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_311 = ROOT / ".venv-bench311"

IMPORT = """
import json, time
import azure.functions
started = time.perf_counter()
import function_app
print(json.dumps((time.perf_counter() - started) * 1000))
"""

READY_313 = """
import asyncio, json, pathlib, time
import azure.functions
started = time.perf_counter()
from devhost.runtime import Runtime
runtime = asyncio.run(Runtime.start(pathlib.Path.cwd()))
assert len(runtime.functions) == {functions}
print(json.dumps((time.perf_counter() - started) * 1000))
"""

READY_311 = """
import json, time
import azure.functions
started = time.perf_counter()
import function_app
assert len(function_app.app.get_functions()) == {functions}
print(json.dumps((time.perf_counter() - started) * 1000))
"""


def python_311() -> Path | None:
    """.venv-bench311's interpreter, made on first use; None when no Python 3.11 is here."""
    python = VENV_311 / "bin" / "python"
    if python.exists():
        return python
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False).stdout
    found = sorted(Path(root.strip()).glob("versions/3.11*/bin/python3.11"))
    if not found:
        return None
    subprocess.run([str(found[-1]), "-m", "venv", str(VENV_311)], check=True)
    requirements = [
        line.split("#")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip() and not line.startswith("azure-functions")
    ]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "azure-functions>=1.21,<2", *requirements],
        check=True,
    )
    return python


def _ms(python: Path | str, code: str) -> float:
    out = subprocess.run(
        [str(python), "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def function_count() -> int:
    """Ahoy's functions, one trigger decorator each (both Pythons must index all of them)."""
    sources = (Path(__file__).resolve().parents[1] / "api" / "edge").glob("*.py")
    return sum(
        line.startswith(("@bp.route(", "@bp.timer_trigger(", "@bp.warm_up_trigger("))
        for source in sources
        for line in source.read_text().splitlines()
    )


def paired(runs: int) -> list[tuple[str, float, float, float]]:
    """(figure, 3.13 ms, 3.11 ms, median ratio) for import and ready; [] without a 3.11."""
    old = python_311()
    if old is None:
        return []
    rows = []
    functions = function_count()
    for figure, new_code, old_code in [
        ("import function_app", IMPORT, IMPORT),
        (
            "ready to invoke (import + index)",
            READY_313.replace("{functions}", str(functions)),
            READY_311.replace("{functions}", str(functions)),
        ),
    ]:
        _ms(sys.executable, new_code), _ms(old, old_code)  # warm the file cache
        pairs = [(_ms(sys.executable, new_code), _ms(old, old_code)) for _ in range(runs)]
        rows.append(
            (
                figure,
                statistics.median(p[0] for p in pairs),
                statistics.median(p[1] for p in pairs),
                statistics.median(p[0] / p[1] for p in pairs),
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = paired(args.runs)
    if not rows:
        print("no Python 3.11 here: nothing to compare")
        return 1
    for figure, new, old, ratio in rows:
        print(f"{figure}: 3.13 {new:.1f} ms, 3.11 {old:.1f} ms, {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
