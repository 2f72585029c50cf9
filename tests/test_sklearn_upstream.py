"""scikit-learn's own tests of its MLPs, run on fastmlp's drop-ins.

The installed scikit-learn's ``sklearn/neural_network/tests/test_mlp.py`` is
read, its one import of the estimators swapped for ``fastmlp.sklearn``'s,
and its tests run here, every one that uses the public API. The few that
read or write scikit-learn's private internals, which fastmlp's estimators do
not have, are skipped with the reason (``NOT_APPLICABLE``).
"""

from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

_SOURCE = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
_IMPORT = "from sklearn.neural_network import MLPClassifier, MLPRegressor"

NOT_APPLICABLE = {
    "test_gradient": "calls scikit-learn's private _loss_grad_lbfgs with its own work "
                     "arrays; fastmlp's gradients are checked against finite differences "
                     "in tests/test_sklearn.py (test_lbfgs_gradient_matches_finite_differences)",
}


def _upstream_tests() -> dict:
    source = _SOURCE.read_text()
    if _IMPORT not in source:  # pragma: no cover - a scikit-learn that moved its import
        pytest.skip(f"{_SOURCE} no longer imports the estimators as {_IMPORT!r}",
                    allow_module_level=True)
    namespace = {"__name__": "sklearn_test_mlp"}
    exec(compile(source.replace(_IMPORT, "from fastmlp.sklearn import MLPClassifier, "
                                "MLPRegressor"), str(_SOURCE), "exec"), namespace)
    return {name: value for name, value in namespace.items() if name.startswith("test_")}


for _name, _test in _upstream_tests().items():
    if _name in NOT_APPLICABLE:
        _test = pytest.mark.skip(reason=NOT_APPLICABLE[_name])(_test)
    globals()[_name] = _test


@pytest.fixture(params=[0, 42])
def global_random_seed(request):
    """scikit-learn's fixture of the same name (its conftest.py), over two seeds."""
    return request.param
