"""Plots of a factorization, with matplotlib (``pip install 'dnmf[plot]'``), imported only when a plot is drawn.

Every function takes a fitted :class:`dnmf.NMF` or a :class:`dnmf.Result` and returns the matplotlib ``Axes`` or
``Figure`` it drew on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_components", "plot_convergence", "plot_top_features"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("dnmf.plot needs matplotlib: pip install 'dnmf[plot]'") from error
    return plt


def _loss_history(fit: Any) -> list[float]:
    if hasattr(fit, "loss_history_"):
        return list(fit.loss_history_)
    if hasattr(fit, "info"):
        return list(fit.info.get("loss_history", []))
    raise TypeError(f"Expected a fitted dnmf.NMF or a dnmf.Result, got {type(fit).__name__}.")


def _components(fit: Any) -> np.ndarray:
    if hasattr(fit, "components_"):
        return np.asarray(fit.components_)
    if hasattr(fit, "H"):
        return np.asarray(fit.H)
    raise TypeError(f"Expected a fitted dnmf.NMF or a dnmf.Result, got {type(fit).__name__}.")


def plot_convergence(fit: Any, ax: Any = None, log: bool = True) -> Any:
    """``‖X − WH‖_F`` per iteration.

    Parameters
    ----------
    fit : NMF or Result
    ax : matplotlib Axes, optional
    log : bool, default=True
        Logarithmic loss axis.

    Returns
    -------
    matplotlib.axes.Axes
    """
    plt = _pyplot()
    history = _loss_history(fit)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    ax.plot(np.arange(1, len(history) + 1), history, marker="." if len(history) < 50 else None)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("‖X − WH‖_F")
    ax.set_title("convergence")
    return ax


def plot_components(fit: Any, image_shape: tuple[int, int], n_cols: int = 5, cmap: str = "gray") -> Any:
    """Each row of H as an image, for data whose columns are the pixels of ``image_shape`` images.

    Parameters
    ----------
    fit : NMF or Result
    image_shape : (height, width)
        ``height * width`` must equal the number of features.
    n_cols : int, default=5
    cmap : str, default='gray'

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    components = _components(fit)
    height, width = image_shape
    if height * width != components.shape[1]:
        raise ValueError(f"image_shape {image_shape} has {height * width} pixels, but the components have "
                         f"{components.shape[1]} features: pass the shape of one image.")
    n_rows = -(-len(components) // n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols, 1.6 * n_rows), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if index < len(components):
            ax.imshow(components[index].reshape(image_shape), cmap=cmap)
            ax.set_title(f"{index}", fontsize=8)
    figure.tight_layout()
    return figure


def plot_top_features(result: Any, n: int = 10, n_cols: int = 4) -> Any:
    """The ``n`` heaviest labelled columns of every component (words per topic, genes per program) as bar charts.

    Parameters
    ----------
    result : Result or NMF
        A :class:`dnmf.Result` (labels from its store) or anything with a ``top_features(n)`` method.
    n : int, default=10
    n_cols : int, default=4

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _pyplot()
    if not hasattr(result, "top_features"):
        raise TypeError("plot_top_features needs a dnmf.Result (dnmf.load_result(path)), whose store holds the "
                        f"column labels; got {type(result).__name__}.")
    tops = result.top_features(n)
    n_rows = -(-len(tops) // n_cols)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 0.28 * n * n_rows + 0.6), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index >= len(tops):
            ax.set_axis_off()
            continue
        labels, weights = zip(*tops[index]) if tops[index] else ((), ())
        positions = np.arange(len(labels))
        ax.barh(positions, weights)
        ax.set_yticks(positions, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"component {index}", fontsize=9)
    figure.tight_layout()
    return figure
