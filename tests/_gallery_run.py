"""Run one of scikit-learn's gallery examples and record what its MLPs score.

    python tests/_gallery_run.py EXAMPLE.py MODULE OUT.json

``MODULE`` is the module whose ``MLPClassifier`` and ``MLPRegressor`` the example
imports (``sklearn.neural_network``, or ``fastmlp.sklearn`` once the test has
swapped the import). Before the example runs, the two classes' ``score`` and
``fit`` are wrapped, so the record does not depend on how the example prints:

- every ``score`` the example calls, directly or through a ``Pipeline`` (whose
  ``score`` calls its last step's), is one ``"score"`` record;
- every ``fit`` adds a ``"fit"`` record: the fitted estimator's score on the
  data it was fitted on (accuracy or R²), which the runner computes itself, so
  that an example that computes no score is still compared.

Each record names the estimator's class, the parameters the example set (those
that differ from the constructor's defaults, as ``repr``) and the number of
rows, so the test can pair scikit-learn's records with fastmlp's, and the
fitted model's final training loss (``loss_``), which tells whether the two
sides ended at the same model. The records
go to ``OUT.json`` as a list, in the order they were made. The example runs as
``__main__`` with matplotlib's Agg backend, where ``plt.show()`` draws nothing.
"""

import functools
import importlib
import inspect
import json
import os
import sys
from pathlib import Path


def _params_set(estimator) -> dict:
    """The constructor parameters that differ from their defaults, as ``repr`` strings."""
    signature = inspect.signature(type(estimator).__init__)
    defaults = {name: repr(parameter.default)
                for name, parameter in signature.parameters.items()
                if parameter.default is not parameter.empty}
    return {name: repr(value) for name, value in estimator.get_params(deep=False).items()
            if name in defaults and repr(value) != defaults[name]}


def _record_scores(cls, records: list) -> None:
    """Wrap ``cls.score`` and ``cls.fit`` in place so that each call appends a record."""
    score, fit = cls.score, cls.fit

    def record(estimator, kind, X, value):
        records.append({"kind": kind, "estimator": cls.__name__,
                        "params": _params_set(estimator), "n_samples": len(X),
                        "value": float(value), "loss": float(estimator.loss_)})

    @functools.wraps(score)
    def recorded_score(self, X, y, *args, **kwargs):
        value = score(self, X, y, *args, **kwargs)
        record(self, "score", X, value)
        return value

    @functools.wraps(fit)
    def recorded_fit(self, X, y, *args, **kwargs):
        fitted = fit(self, X, y, *args, **kwargs)
        record(self, "fit", X, score(self, X, y))
        return fitted

    cls.score, cls.fit = recorded_score, recorded_fit


def main(example: str, module: str, out: str) -> None:
    os.environ["MPLBACKEND"] = "Agg"
    estimators = importlib.import_module(module)
    records: list = []
    for name in ("MLPClassifier", "MLPRegressor"):
        _record_scores(getattr(estimators, name), records)
    path = Path(example)
    sys.argv = [str(path)]
    namespace = {"__name__": "__main__", "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    Path(out).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
