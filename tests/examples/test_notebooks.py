"""Every notebook in examples/ runs top to bottom in a real Jupyter kernel (nbclient + ipykernel), and its results
are checked: no error output, the expected shapes, and the classic findings each notebook reproduces.

Each notebook ends with a cell tagged ``summary`` that prints one JSON object; the tests read it from the executed
notebook. Notebooks run in a temporary copy of examples/, with ``DNMF_EXAMPLES_SMALL=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the 'test' extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the 'test' extra (nbclient)")
pytest.importorskip("ipykernel", reason="the notebook tests need the 'test' extra (ipykernel)")
pytest.importorskip("matplotlib", reason="the notebooks plot with matplotlib")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: Per cell, a guard against a hung kernel, not a speed target: speed is the benchmarks' job (benchmarks/), since a
#: timed test fails on a busy machine.
SECONDS_PER_CELL = 600


def run_notebook(name: str, tmp_path: Path) -> tuple[dict, nbformat.NotebookNode, float]:
    """Execute ``examples/name`` in a fresh kernel; return its summary JSON, the executed notebook, its seconds."""
    shutil.copy(EXAMPLES / name, tmp_path / name)
    notebook = nbformat.read(tmp_path / name, as_version=4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "DNMF_EXAMPLES_SMALL": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    client = nbclient.NotebookClient(notebook, timeout=SECONDS_PER_CELL, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - started
    nbformat.write(notebook, tmp_path / f"executed-{name}")
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
              if output.output_type == "error"]
    assert not errors, errors
    (summary_cell,) = [cell for cell in notebook.cells if "summary" in cell.metadata.get("tags", [])]
    stdout = "".join(output.get("text", "") for output in summary_cell.outputs
                     if output.output_type == "stream" and output.name == "stdout")
    return json.loads(stdout.strip().splitlines()[-1]), notebook, seconds


def outputs_of_type(notebook, mime: str) -> list:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if mime in output.get("data", {})]


def test_nmf_vs_pca(tmp_path):
    summary, notebook, seconds = run_notebook("nmf_vs_pca.ipynb", tmp_path)
    assert summary["W_shape"] == [600, 2] and summary["H_shape"] == [2, 3]
    assert min(summary["nmf_best_cosine_to_a_centre"]) > 0.97          # each NMF axis runs through a blob
    assert sorted(summary["nmf_axes_matched_centres"]) == [0, 1]       # the two outer blobs, one each
    assert abs(summary["pca_axes_dot"]) < 1e-8                         # PCA's axes are orthogonal
    assert summary["pca_axes_have_negative_entries"]
    assert summary["nmf_relative_error"] < 0.1
    assert outputs_of_type(notebook, "image/png"), "the 3-D plot is missing"


def test_faces(tmp_path):
    summary, notebook, seconds = run_notebook("faces.ipynb", tmp_path)
    assert summary["images_shape"] == [100, 25, 25]
    assert summary["nmf_components_shape"] == summary["pca_components_shape"] == [16, 625]
    assert summary["nmf_min"] >= 0
    assert summary["nmf_sparsity"] > 1.5 * summary["pca_sparsity"]     # parts versus holistic eigenfaces
    assert summary["nmf_relative_error"] < 0.3
    assert len(outputs_of_type(notebook, "image/png")) >= 3            # convergence, NMF and PCA components


def test_topics(tmp_path):
    summary, notebook, seconds = run_notebook("topics.ipynb", tmp_path)
    assert summary["n_documents"] >= 1000 and summary["W_shape"] == [summary["n_documents"], 10]
    assert summary["H_shape"] == [10, summary["n_words"]]
    shares, words = summary["section_share"], summary["top_words"]
    programming = {"int", "null", "char", "returns", "return", "function", "functions", "error", "pointer",
                   "errno", "struct", "const", "library", "value"}
    library_topics = [t for t, share in enumerate(shares) if share["2"] + share["3"] >= 0.8
                      and len(programming & set(words[t])) >= 2]
    command_topics = [t for t, share in enumerate(shares) if share["1"] >= 0.8]
    assert library_topics, (shares, words)   # system calls and library functions form their own topics
    assert command_topics, (shares, words)   # and commands theirs
    assert not set(library_topics) & set(command_topics)


@pytest.mark.cluster
def test_dashboard(tmp_path):
    summary, notebook, seconds = run_notebook("dashboard.ipynb", tmp_path)
    assert summary["dashboard_status"] == 200
    assert summary["html_has_link"]
    assert summary["shape"] == [20_000, 2_000] and summary["n_iter"] >= 1
    html_outputs = [output["data"]["text/html"] for output in outputs_of_type(notebook, "text/html")]
    assert any("dnmf-summary" in markup and summary["dashboard_link"] in markup for markup in html_outputs)
    assert outputs_of_type(notebook, "application/vnd.jupyter.widget-view+json"), "no progress-bar widget"


def test_choosing_the_rank(tmp_path):
    summary, notebook, seconds = run_notebook("choosing_the_rank.ipynb", tmp_path)
    ranks, test, std, train = (summary[key] for key in ("ranks", "test_error", "test_error_std", "train_error"))
    best = ranks.index(summary["best_rank"])
    assert test[best] <= min(test) + std[int(np.argmin(test))]       # the documented rule
    assert test[0] > test[best] and 2 < summary["best_rank"] < ranks[-1]  # the curve falls, then flattens or rises
    assert all(t >= e for t, e in zip(test, train))                  # held-out entries are harder than seen ones
    assert summary["stability"][0] > summary["stability"][-1]        # few components agree; many do not
    assert outputs_of_type(notebook, "image/png")                    # the curves were drawn
