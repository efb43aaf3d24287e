"""Execute every notebook in ``notebooks/`` top to bottom, as CI does.

Each notebook checks its own results against independent references (scikit-learn, scipy,
closed forms, single runs) in plain cells, so a wrong value there is an error here too: the
notebooks print and plot, and this test fails on any exception a cell raises.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")  # provides the native ``python3`` kernel

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def _error_outputs(code_cells):
    return [out for cell in code_cells for out in cell.outputs if out.output_type == "error"]


def test_notebooks_are_present():
    names = [path.name for path in NOTEBOOKS]
    assert names == [
        "01_penalties_and_transforms.ipynb",
        "02_lambda_sweep_cv.ipynb",
        "03_attention_head_pruning.ipynb",
        "04_soft_vs_hard.ipynb",
        "05_feature_selection_path.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_committed_notebook_is_executed_and_installs_only_when_missing(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    first = code_cells[0].source
    assert first.startswith("# Colab: jaxreg is on no package index."), "the honest instruction"
    assert first == _install_cell(NOTEBOOKS[0]), "every notebook installs jaxreg the same way"
    # outputs are committed: every code cell ran, in order, and the figures are there
    counts = [cell.execution_count for cell in code_cells]
    assert counts == list(range(1, len(code_cells) + 1))
    images = [
        output
        for cell in code_cells
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{path.name} has no rendered figure"
    assert not _error_outputs(code_cells)


def _install_cell(path):
    notebook = nbformat.read(path, as_version=4)
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


def _run_install_cell(monkeypatch, cwd, source=""):
    """Run the install cell where jaxreg is missing; pip is recorded, not run."""
    import jaxreg

    installed = []

    def fake_pip(command):
        installed.append(command)
        monkeypatch.setitem(sys.modules, "jaxreg", jaxreg)  # "installed": importable again

    monkeypatch.setitem(sys.modules, "jaxreg", None)  # import jaxreg raises ImportError
    monkeypatch.setattr(subprocess, "check_call", fake_pip)
    monkeypatch.chdir(cwd)
    cell = _install_cell(NOTEBOOKS[0]).replace('JAXREG_SOURCE = ""', f"JAXREG_SOURCE = {source!r}")
    namespace = {}
    exec(compile(cell, "install-cell", "exec"), namespace)
    assert namespace["jaxreg"] is jaxreg
    return installed


def test_install_cell_installs_the_uploaded_wheel_or_the_given_source(monkeypatch, tmp_path):
    older_name = tmp_path / "jaxreg-0.2.0-py3-none-any.whl"
    newest = tmp_path / "jaxreg-0.1.0-py3-none-any.whl"
    for age, wheel in enumerate((newest, older_name)):
        wheel.write_bytes(b"")
        os.utime(wheel, (1e9 - age, 1e9 - age))
    # the newest upload wins, whatever its name
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert _run_install_cell(monkeypatch, tmp_path) == [[*pip, newest.name]]
    url = "git+https://host.test/jaxreg.git"
    assert _run_install_cell(monkeypatch, tmp_path, url) == [[*pip, url]]


def test_install_cell_without_a_wheel_says_what_to_upload(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match=r"upload a jaxreg-\*\.whl.*or set JAXREG_SOURCE"):
        _run_install_cell(monkeypatch, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not _error_outputs(code_cells)
    assert all(cell.execution_count is not None for cell in code_cells)
