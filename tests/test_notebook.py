"""notebooks/quickstart.ipynb executes from top to bottom (outputs are stripped in git)."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_notebook_is_stripped_and_runs(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    monkeypatch.setenv("SCNN_QUICKSTART_DIR", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert len(list((tmp_path / "pred").rglob("*.png"))) == 8
