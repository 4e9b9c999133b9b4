"""The checkpoint folder of a rank survey (:func:`dnmf.select_rank`): what survey it belongs to, and where each fit
checkpoints.

The folder holds ``survey.json`` (the survey's parameters and holdout seeds) and one NMF checkpoint per fit,
``replicate-R-rank-K`` (:mod:`dnmf.data.checkpoint`). A rerun of the same survey resumes every fit from its own
checkpoint: a finished one is read back and not refitted, an interrupted one continues where it stopped. The
ranks may change between runs (every rank of a replicate sees the same holdout); anything else must not.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from dnmf.data.checkpoint import CheckpointError
from dnmf.data.location import Location

__all__ = ["MANIFEST", "SurveyFolder"]

MANIFEST = "survey.json"
_FORMAT = {"kind": "dnmf-rank-survey", "version": 1}
#: The manifest key of the rule by which the survey's ``mask_updates='auto'`` chose each fit's steps (see
#: :func:`dnmf.select_rank`); a folder without it was begun when every masked fit took exact steps.
_AUTO_RULE = "auto_mask_updates"


class SurveyFolder:
    """The folder ``url`` for a survey with ``parameters`` (JSON values; not its ranks), made if it is missing.

    Parameters
    ----------
    url : str or path
        Local folder or fsspec URL.
    parameters : dict
        What identifies the survey: shape of X, replicates, test fraction, solver, loss, fit parameters, seed.
    seeds : list of int
        The holdout seeds drawn for this run; a rerun of a survey begun with ``random_state=None`` keeps the
        seeds it began with (:attr:`seeds`).
    auto_rule : dict, optional
        JSON for how the survey's ``mask_updates='auto'`` chooses each fit's steps; a rerun keeps the rule it
        began with (:attr:`auto_rule`).

    Raises
    ------
    CheckpointError
        If the folder holds another survey (the message names what differs), or files that are not a survey's.
    """

    def __init__(self, url: str | os.PathLike[str], parameters: dict[str, Any], seeds: list[int],
                 auto_rule: dict[str, Any] | None = None) -> None:
        self.location = Location.parse(url, None)
        self.seeds = list(seeds)
        #: The rule ``mask_updates='auto'`` follows in this folder: the one the survey began with, so that every
        #: fit resumes with the steps its checkpoint was made by; None in a folder begun before EM steps existed.
        self.auto_rule: dict[str, Any] | None = auto_rule
        manifest = self.location.child(MANIFEST)
        fs, path = self.location._fs
        if fs.exists(path):
            if not fs.exists(manifest._fs[1]):
                if fs.ls(path):
                    raise CheckpointError(f"{self.location.url!r} holds files but no {MANIFEST}: it is not a dnmf "
                                          "rank survey's checkpoint folder. Choose another folder.")
            else:
                self.seeds = self._check(manifest, parameters)
                return
        else:
            fs.makedirs(path, exist_ok=True)
            if self.location.is_local:
                os.chmod(path, 0o700)
        self._write(manifest, {"dnmf": _FORMAT, "parameters": parameters, "seeds": self.seeds,
                               _AUTO_RULE: auto_rule})

    def _check(self, manifest: Location, parameters: dict[str, Any]) -> list[int]:
        fs, path = manifest._fs
        try:
            with fs.open(path, "r") as file:
                saved = json.load(file)
            ours = saved["dnmf"] == _FORMAT
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f"{manifest.url!r} is not a dnmf rank survey's manifest ({error}).") from None
        if not ours:
            raise CheckpointError(f"{manifest.url!r} is not a dnmf rank survey's manifest.")
        before = saved.get("parameters", {})
        differ = sorted(key for key in {*before, *parameters} if before.get(key) != parameters.get(key))
        if differ:
            listed = "; ".join(f"{key}: {before.get(key)!r} then, {parameters.get(key)!r} now" for key in differ)
            raise CheckpointError(f"The survey checkpointed in {self.location.url!r} had other parameters ({listed}). "
                                  "Rerun it with the same ones to resume it, or choose another folder.")
        rule = saved.get(_AUTO_RULE)
        self.auto_rule = rule if isinstance(rule, dict) else None
        return [int(seed) for seed in saved["seeds"]] if parameters.get("random_state") is None else self.seeds

    def _write(self, manifest: Location, content: dict[str, Any]) -> None:
        fs, path = manifest._fs
        staging = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open(staging, "w") as file:
            json.dump(content, file, indent=1)
        fs.mv(staging, path)

    def fit(self, replicate: int, rank: int) -> str:
        """The checkpoint folder of replicate ``replicate``'s fit at rank ``rank``."""
        return self.location.child(f"replicate-{replicate}-rank-{rank}").url
