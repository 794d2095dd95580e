"""examples/quickstart.ipynb runs top to bottom in a Jupyter kernel, and its plot is shown inline.

The kernel is this interpreter (``sys.executable``), through a kernel spec written under
``tmp_path``: a ``python3`` kernel installed elsewhere on the machine (another Python) is
never picked up, on a fresh clone or not.
"""

from __future__ import annotations

import base64
import gc
import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

NOTEBOOK = Path(__file__).parents[2] / "examples" / "quickstart.ipynb"


@pytest.mark.timeout(300)
# jupyter_client leaves the kernel client's zmq sockets to the garbage collector: collected
# below, inside this test, where their ResourceWarning is expected.
@pytest.mark.filterwarnings("ignore:Unclosed socket <zmq:ResourceWarning")
@pytest.mark.filterwarnings("ignore:unclosed context <zmq:ResourceWarning")
def test_quickstart_notebook_runs_and_shows_the_curves_inline(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    spec = tmp_path / "kernels" / "cadence-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cadence test", "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    kernel = KernelManager(kernel_name="cadence-test", kernel_spec_manager=specs)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, km=kernel, timeout=240, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    del client, kernel
    gc.collect()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    fit_text = "".join(o.get("text", "") for o in code[1].outputs if o.output_type == "stream")
    assert "Epoch 1/15" in fit_text
    evaluated = code[2].outputs[0]["data"]["text/plain"]
    assert "'accuracy'" in evaluated and "'loss'" in evaluated
    (plot,) = [o for o in code[3].outputs if o.output_type == "execute_result"]
    png = base64.b64decode(plot["data"]["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert list(tmp_path.glob("*.png")) == []  # Shown, not saved.
