"""scikit-learn's generic estimator checks over ``dnmf.NMF``, configured as scikit-learn configures its own NMF in
its test suite (``sklearn/utils/_test_common/instance_generator.py``: ``max_iter=500``, a small ``n_components``, 1
for ``check_dict_unchanged``), with dnmf's own tags, and the output checks scikit-learn's suite adds for its
transformers."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import (
    check_dict_unchanged,
    check_global_output_transform_pandas,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

from dnmf import NMF

#: Checks that cannot pass by design, each with the reason (see the README, "Differences from scikit-learn").
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([NMF(n_components=2, max_iter=500)],
                         expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check", [
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_global_output_transform_pandas,
], ids=lambda check: check.__name__)
def test_sklearn_output_checks(check):
    """The checks scikit-learn's own test suite (``sklearn/tests/test_common.py``) adds for its transformers."""
    check("NMF", NMF(n_components=2, max_iter=500))


def test_sklearn_dict_unchanged_check():
    """scikit-learn runs this check on its NMF with ``n_components=1``."""
    check_dict_unchanged("NMF", NMF(n_components=1, max_iter=500))
