"""Build the zip Azure runs, the way azd and Core Tools build it: the project folder minus
what .funcignore (gitignore syntax) leaves out. Azure installs requirements.txt itself (remote
build), so no packages go in.

    .venv/bin/python scripts/package.py [dist/ahoy.zip]
"""

from __future__ import annotations

import argparse
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pathspec

ROOT = Path(__file__).resolve().parents[1]


def packaged_files(root: Path = ROOT) -> Iterator[Path]:
    """Every file under `root` that .funcignore keeps, as paths relative to `root`."""
    ignore = pathspec.GitIgnoreSpec.from_lines((root / ".funcignore").read_text().splitlines())
    for folder, dirs, files in os.walk(root):
        here = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not ignore.match_file(f"{(here / d).as_posix()}/"))
        for name in sorted(files):
            if not ignore.match_file((here / name).as_posix()):
                yield here / name


def build(target: Path, root: Path = ROOT) -> list[str]:
    """Write the zip to `target`; the names it holds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in packaged_files(root):
            if (root / relative).resolve() == target.resolve():
                continue
            archive.write(root / relative, relative.as_posix())
            names.append(relative.as_posix())
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", type=Path, default=ROOT / "dist" / "ahoy.zip")
    target = parser.parse_args().target
    names = build(target)
    print(f"{target}: {len(names)} files")


if __name__ == "__main__":
    main()
