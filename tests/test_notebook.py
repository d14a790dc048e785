"""The walkthrough notebook runs from top to bottom on the demo (executed with nbclient)."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow


def test_walkthrough_notebook_executes(repo_root, tmp_path):
    nb = nbformat.read(repo_root / "notebooks" / "01_walkthrough.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "nodes" in text and "gap:" in text
