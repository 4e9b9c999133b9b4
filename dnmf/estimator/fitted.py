"""The fitted state of :class:`dnmf.NMF` and its round trip through a result store.

Every fitted attribute is set in one place, :meth:`FittedState._set_fitted`, after a fit or from a result store
(:meth:`FittedState.from_result`); :meth:`FittedState.save` writes it back.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dnmf.data.results import load_result, save_result

__all__ = ["FittedState"]


class FittedState:
    """Fitted attributes, ``from_result`` and ``save`` of an estimator whose fit sets ``components_``."""

    def _set_fitted(self, W: Any, column_chunks: tuple[int, ...], labels: tuple[Any, Any], *, n_iter: int,
                    reconstruction_err: float, loss_history: list[float], converged: bool,
                    fingerprint: dict[str, Any], timings: dict[str, Any]) -> None:
        """Every fitted attribute, in one place: after a fit, or from a result store (:meth:`from_result`)."""
        self.n_components_ = int(self.components_.shape[0])
        self.n_features_in_ = int(self.components_.shape[1])
        self.n_samples_fit_ = int(W.shape[0])
        self.n_iter_ = int(n_iter)
        self.reconstruction_err_ = float(reconstruction_err)
        self.loss_history_ = [float(loss) for loss in loss_history]
        self.converged_ = bool(converged)
        self.fingerprint_ = fingerprint
        self.timings_ = timings
        self._fit_column_chunks = tuple(column_chunks)
        self._W = W
        self._labels = labels

    @classmethod
    def from_result(cls, result: Any, **params: Any) -> Any:
        """A fitted estimator from a result store, as if it had just fitted that result.

        Parameters
        ----------
        result : dnmf.Result, str or path
            A loaded result, or the path or URL of a result store (see :func:`dnmf.load_result`).
        **params
            Constructor parameters that replace the stored ones (e.g. ``max_iter`` for :meth:`transform`).

        Returns
        -------
        NMF
            With the stored parameters and every fitted attribute; ``components_`` is the stored H, and
            ``transform``, ``inverse_transform``, ``save`` and the displays work as after :meth:`fit`.
        """
        if isinstance(result, (str, os.PathLike)):
            result = load_result(result)
        info = result.info
        stored = {name: value for name, value in info.get("params", {}).items() if name in cls._get_param_names()}
        if isinstance(stored.get("chunks"), list):
            stored["chunks"] = tuple(stored["chunks"])
        model = cls(**{**stored, **params})
        model._validate_params()
        model.components_ = np.asarray(result.H)
        history = info.get("loss_history", [])
        model._set_fitted(result.W, (result.H.shape[1],), (result.row_labels, result.col_labels),
                          n_iter=info.get("n_iter", len(history)),
                          reconstruction_err=info.get("reconstruction_err", history[-1] if history else float("nan")),
                          loss_history=history, converged=info.get("converged", False),
                          fingerprint=info.get("fingerprint", {}), timings=info.get("timings", {}))
        return model

    def save(self, url: Any, *, overwrite: bool = False, storage_options: dict[str, Any] | None = None) -> None:
        """Write W, H, labels and the record of the fit to a result store (see :mod:`dnmf.data.results`).

        Raises
        ------
        FileExistsError
            If a store exists at ``url`` and ``overwrite`` is False.
        """
        self._check_is_fitted()
        record = {
            "params": self.get_params(),
            "n_components": self.n_components_,
            "n_iter": self.n_iter_,
            "converged": self.converged_,
            "reconstruction_err": self.reconstruction_err_,
            "loss_history": self.loss_history_,
            "timings": self.timings_,
            "fingerprint": self.fingerprint_,
        }
        save_result(url, self._W, self.components_, record, row_labels=self._labels[0], col_labels=self._labels[1],
                    overwrite=overwrite, storage_options=storage_options)
