"""Executes a notebook headless with nbclient, as CI does, and fails on the
first cell that raises.

    FACEBLOCK_STORE=/tmp/faceblock-market python notebooks/run_notebook.py \
        [notebooks/market.ipynb] [--out executed.ipynb]

The kernel is this Python's (ipykernel), started in the notebook's folder, so
the notebook runs as it does when opened in Jupyter. `--out` keeps the
executed copy with its outputs and charts; the committed notebook stays
without outputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", nargs="?", default=str(HERE / "market.ipynb"))
    ap.add_argument("--out", help="write the executed notebook here")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    a = ap.parse_args()
    path = Path(a.notebook).resolve()
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    if dirty:
        print(f"{path}: cells {dirty} have committed outputs; clear them before committing", file=sys.stderr)
        return 1
    client = NotebookClient(
        nb,
        timeout=a.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    t0 = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"{path.name}: a cell failed:\n{e}", file=sys.stderr)
        return 1
    finally:
        if a.out:
            nbformat.write(nb, a.out)
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
    code = sum(1 for c in nb.cells if c.cell_type == "code")
    print(f"{path.name}: {code} code cells ran, {images} charts ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
