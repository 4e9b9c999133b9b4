"""``dnmf inspect``: what a matrix store, a result store or a checkpoint folder holds, read on this machine."""

from __future__ import annotations

import json
from typing import Any

import dask
import numpy as np
import zarr

__all__ = ["describe", "printable", "render"]

#: Labels shown per axis.
SHOWN_LABELS = 5


def printable(text: Any) -> str:
    """``text`` with control and other non-printable characters escaped (``\\x1b``, ``\\u200b``), so that labels
    from a store cannot move the cursor, recolour or clear a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _labels_preview(labels: np.ndarray | None) -> list[str] | None:
    return None if labels is None else [str(x) for x in labels[:SHOWN_LABELS]]


def _matrix_nnz(url: str, A: Any) -> int:
    """Stored entries of a sparse store (from its metadata), or non-zeros of a dense one (one read of it)."""
    from dnmf.data.store import Location, open_node

    node = open_node(Location.parse(url, None))
    if isinstance(node, zarr.Group) and node.attrs.get("encoding-type") == "anndata":
        node = node["X"]
    if isinstance(node, zarr.Group):
        return int(node["data"].shape[0])
    return int(dask.compute(A.map_blocks(lambda b: np.array([[np.count_nonzero(b)]]), chunks=(1, 1)).sum(),
                            scheduler="threads")[0])


def describe_matrix(url: str) -> dict[str, Any]:
    from dnmf import open_matrix, read_labels

    A = open_matrix(url)
    rows, cols = read_labels(url)
    nnz = _matrix_nnz(url, A)
    return {"kind": "matrix", "path": url, "shape": list(A.shape), "dtype": str(A.dtype),
            "sparse": type(A._meta).__module__.startswith("scipy"), "nnz": nnz,
            "density": nnz / max(1, A.shape[0] * A.shape[1]),
            "blocks": list(A.numblocks), "block_shape": [A.chunks[0][0], A.chunks[1][0]],
            "row_labels": _labels_preview(rows), "col_labels": _labels_preview(cols)}


def describe_result(url: str, top: int) -> dict[str, Any]:
    from dnmf import load_result

    result = load_result(url)
    info = result.info
    params = info.get("params", {})
    return {"kind": "result", "path": url, "W_shape": list(result.W.shape), "H_shape": list(result.H.shape),
            "n_components": result.n_components, "input": info.get("fingerprint", {}),
            "params": {name: params.get(name) for name in ("solver", "init", "max_iter", "tol", "random_state",
                                                           "alpha_W", "alpha_H", "l1_ratio", "chunks")},
            "n_iter": info.get("n_iter"), "converged": info.get("converged"),
            "reconstruction_err": info.get("reconstruction_err"), "loss_history": info.get("loss_history", []),
            "top_features": [[[label, weight] for label, weight in component]
                             for component in result.top_features(top)],
            "versions": info.get("versions", {})}


def describe_checkpoint(url: str) -> dict[str, Any]:
    from dnmf.data.checkpoint import CheckpointStore

    loaded = CheckpointStore(url).load()
    if loaded is None:
        return {"kind": "checkpoint", "path": url, "iteration": None, "complete": False}
    state, run = loaded.state, loaded.state.get("run", {})
    return {"kind": "checkpoint", "path": url, "complete": True, "iteration": loaded.iteration,
            "W_shape": list(loaded.W.shape), "H_shape": list(loaded.H.shape),
            "n_components": run.get("n_components"), "params": run.get("params", {}),
            "input": run.get("fingerprint", {}), "loss_history": state.get("progress", {}).get("loss_history", [])}


def describe(url: str, *, top: int = 10) -> dict[str, Any]:
    """What is stored at ``url``: a checkpoint folder, a result store, or a matrix store.

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    dnmf.StoreError
        If it is none of the three.
    """
    from dnmf.data.checkpoint import CheckpointStore
    from dnmf.data.store import Location, open_node

    with dask.config.set(scheduler="sync"):
        if CheckpointStore(url).exists():
            return describe_checkpoint(url)
        node = open_node(Location.parse(url, None))
        if isinstance(node, zarr.Group) and node.attrs.get("dnmf", {}).get("kind") == "result":
            return describe_result(url, top)
        return describe_matrix(url)


def _loss_line(history: list[float]) -> str:
    if not history:
        return "loss history: none"
    shown = " ".join(f"{x:.6g}" for x in history[:3])
    if len(history) > 6:
        shown += " … " + " ".join(f"{x:.6g}" for x in history[-3:])
    elif len(history) > 3:
        shown += " " + " ".join(f"{x:.6g}" for x in history[3:])
    return f"loss history ({len(history)} iterations): {shown}"


def _render_matrix(report: dict[str, Any]) -> list[str]:
    m, n = report["shape"]
    lines = [f"matrix {report['path']}",
             f"  shape {m:,} × {n:,}, {report['dtype']}, {'sparse (CSR blocks)' if report['sparse'] else 'dense'}",
             f"  nnz {report['nnz']:,} (density {report['density']:.3g})",
             f"  chunks: {report['blocks'][0]} × {report['blocks'][1]} blocks of {report['block_shape'][0]:,} × "
             f"{report['block_shape'][1]:,} (the default grid on this machine)"]
    for axis in ("row", "col"):
        if report[f"{axis}_labels"] is not None:
            lines.append(f"  {axis} labels: {', '.join(report[f'{axis}_labels'])}, …")
    return lines


def _render_result(report: dict[str, Any]) -> list[str]:
    fingerprint = report["input"]
    lines = [f"result {report['path']}",
             f"  W {report['W_shape'][0]:,} × {report['W_shape'][1]}, H {report['H_shape'][0]} × "
             f"{report['H_shape'][1]:,}",
             f"  input: shape {fingerprint.get('shape')}, nnz {fingerprint.get('nnz')}, "
             f"chunks {[len(c) for c in fingerprint.get('chunks', [])]} blocks",
             "  params: " + ", ".join(f"{k}={v}" for k, v in report["params"].items()),
             f"  {report['n_iter']} iterations, converged={report['converged']}, "
             f"‖X − WH‖ = {report['reconstruction_err']:.6g}",
             "  " + _loss_line(report["loss_history"]),
             "  top features per component:"]
    for index, component in enumerate(report["top_features"]):
        lines.append(f"    {index:3d}: " + ", ".join(f"{label} ({weight:.3g})" for label, weight in component))
    return lines


def _render_checkpoint(report: dict[str, Any]) -> list[str]:
    if not report["complete"]:
        return [f"checkpoint {report['path']}: no complete version"]
    return [f"checkpoint {report['path']}",
            f"  iteration {report['iteration']}, W {report['W_shape'][0]:,} × {report['W_shape'][1]}, "
            f"H {report['H_shape'][0]} × {report['H_shape'][1]:,}",
            f"  input: shape {report['input'].get('shape')}, nnz {report['input'].get('nnz')}",
            "  params: " + ", ".join(f"{k}={v}" for k, v in report["params"].items()),
            "  " + _loss_line(report["loss_history"])]


def render(report: dict[str, Any], as_json: bool = False) -> str:
    """``report`` from :func:`describe` as text for a person (non-printable characters escaped, see
    :func:`printable`), or as JSON (which escapes them too)."""
    if as_json:
        return json.dumps(report, indent=2, default=str)
    renderer = {"matrix": _render_matrix, "result": _render_result, "checkpoint": _render_checkpoint}
    return "\n".join(printable(line) for line in renderer[report["kind"]](report))
