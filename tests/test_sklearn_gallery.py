"""scikit-learn's gallery examples of its MLPs, run unchanged on fastmlp's drop-ins.

The examples in ``tests/sklearn_gallery/`` (scikit-learn 1.9.1's, on its bundled
or generated data; where they come from, and those left out, in its README)
each run twice in a subprocess by ``tests/_gallery_run.py``: as they are, on
scikit-learn's estimators, and with their one import of the estimators swapped
for ``fastmlp.sklearn``'s. Both must run to the end, and every score fastmlp's
estimators give must be no lower than scikit-learn's (`_lower_scores`).

What is compared is recorded by wrapping the estimators' ``score`` and ``fit``
in the subprocess, not read from printed lines: each ``score`` the example
calls (directly or through a ``Pipeline``), and each fitted model's score on
its own training data, which the runner adds so that an example that computes
no score (the partial-dependence one) is compared too.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")  # plot_partial_dependence_visualization_api.py draws from a DataFrame

GALLERY = Path(__file__).parent / "sklearn_gallery"
RUNNER = Path(__file__).parent / "_gallery_run.py"

# Each example, and the line by which it imports the estimators (swapped for fastmlp's).
EXAMPLES = {
    "plot_classifier_comparison.py": "from sklearn.neural_network import MLPClassifier",
    "plot_mlp_alpha.py": "from sklearn.neural_network import MLPClassifier",
    "plot_mlp_training_curves.py": "from sklearn.neural_network import MLPClassifier",
    "plot_partial_dependence_visualization_api.py":
        "from sklearn.neural_network import MLPRegressor",
}

# Two scores of the same predictions differ by rounding only: R² sums its squares in
# another order (plot_partial_dependence_visualization_api.py: 0.6258792617095827 and
# 0.6258792617095826).
ROUNDING = 1e-9
# Two fits that end with training losses this close (relative) ended at the same model.
SAME_MODEL_RTOL = 1e-6


def swap_import(source: str, line: str) -> str:
    """``source`` with its one ``line`` importing scikit-learn's estimators made fastmlp's."""
    lines = source.splitlines(keepends=True)
    found = [i for i, text in enumerate(lines) if text.rstrip("\n") == line]
    if len(found) != 1:
        raise ValueError(f"expected the line {line!r} once in the example, found it "
                         f"{len(found)} times: the example changed, update EXAMPLES")
    lines[found[0]] = line.replace("from sklearn.neural_network import",
                                   "from fastmlp.sklearn import") + "\n"
    swapped = "".join(lines)
    left = re.findall(r"^\s*(?:from|import)\s+sklearn\.neural_network\b.*$", swapped, re.M)
    if left:
        raise ValueError(f"the example imports scikit-learn's estimators again: {left}")
    return swapped


def run_example(example: Path, module: str, directory: Path) -> list[dict]:
    """Run ``example`` on ``module``'s estimators in a subprocess; its score records."""
    out = directory / f"{module}.json"
    # One BLAS thread: OpenBLAS's spinning threads on these tiny matrices ran
    # scikit-learn's side 3-10x slower on a loaded 2-core machine, with the same scores.
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(RUNNER), str(example), module, str(out)],
                            cwd=directory, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (
        f"{example.name} on {module}'s estimators failed:\n{result.stderr[-6000:]}")
    records = json.loads(out.read_text())
    assert records, f"{example.name} on {module}'s estimators fitted none of them"
    return records


def _lower_scores(theirs: list[dict], ours: list[dict]) -> list[str]:
    """The scores in ``ours`` lower than scikit-learn's (``theirs``), as lines to print.

    The records pair up in order (the same estimator, parameters and number of
    rows, else a ValueError). A score may be lower by `ROUNDING`. Where the two
    fits did not end at the same model (training losses further apart than
    `SAME_MODEL_RTOL`), an accuracy may be lower by one sample (``1 / n_samples``):
    from the same seed the two differ at first by rounding, which L-BFGS's
    hundreds of steps on a non-convex loss can grow into two different minima
    (plot_mlp_alpha.py, linearly separable data, alpha 0.1).
    """
    if len(theirs) != len(ours):
        raise ValueError(f"scikit-learn's run made {len(theirs)} records, fastmlp's "
                         f"{len(ours)}")
    lower = []
    for index, (their, our) in enumerate(zip(theirs, ours)):
        keys = ("kind", "estimator", "params", "n_samples")
        if [their[k] for k in keys] != [our[k] for k in keys]:
            raise ValueError(f"record {index}: scikit-learn's {their} and fastmlp's {our} "
                             "are not of the same fit")
        tolerance = ROUNDING
        same_model = abs(our["loss"] - their["loss"]) <= SAME_MODEL_RTOL * abs(their["loss"])
        if not same_model and our["estimator"] == "MLPClassifier":
            tolerance += 1 / our["n_samples"]
        if our["value"] < their["value"] - tolerance:
            lower.append(f"record {index} ({our['kind']} of {our['estimator']} "
                         f"{our['params']} on {our['n_samples']} rows): fastmlp "
                         f"{our['value']:.6f} < scikit-learn {their['value']:.6f} "
                         f"(losses {our['loss']:.6g}, {their['loss']:.6g})")
    return lower


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_with_scores_no_lower(name, tmp_path):
    example = GALLERY / name
    swapped = tmp_path / "fastmlp" / name
    swapped.parent.mkdir()
    swapped.write_text(swap_import(example.read_text(), EXAMPLES[name]))

    theirs = run_example(example, "sklearn.neural_network", tmp_path)
    ours = run_example(swapped, "fastmlp.sklearn", tmp_path)

    assert _lower_scores(theirs, ours) == []
    print(_side_by_side(name, theirs, ours))


def _side_by_side(name: str, theirs: list[dict], ours: list[dict]) -> str:
    """The example's scores (its fits' scores if it computes none), both sides, as lines."""
    same = sum(abs(o["value"] - t["value"]) <= ROUNDING for t, o in zip(theirs, ours))
    kind = "score" if any(r["kind"] == "score" for r in ours) else "fit"
    lines = [f"\n{name}: {same} of {len(ours)} records equal to scikit-learn's; "
             f"{kind} records, scikit-learn then fastmlp:"]
    for their, our in zip(theirs, ours):
        if our["kind"] == kind:
            params = ", ".join(f"{k}={v}" for k, v in our["params"].items())
            lines.append(f"  {our['estimator']}({params}) n={our['n_samples']}: "
                         f"{their['value']:.6f} {our['value']:.6f}")
    return "\n".join(lines)


def test_every_gallery_example_is_run():
    assert sorted(path.name for path in GALLERY.glob("*.py")) == sorted(EXAMPLES)


def _record(value, loss, kind="score", estimator="MLPClassifier", n_samples=40):
    return {"kind": kind, "estimator": estimator, "params": {"alpha": "1"},
            "n_samples": n_samples, "value": value, "loss": loss}


def test_lower_scores_accepts_equal_and_rounding():
    theirs = [_record(0.9, 0.1), _record(0.6258792617095827, 0.2, estimator="MLPRegressor")]
    ours = [_record(0.9, 0.1), _record(0.6258792617095826, 0.2, estimator="MLPRegressor")]
    assert _lower_scores(theirs, ours) == []


def test_lower_scores_finds_a_lower_score_of_the_same_model():
    lower = _lower_scores([_record(0.9, 0.1)], [_record(0.875, 0.1)])
    assert len(lower) == 1 and "fastmlp 0.875000 < scikit-learn 0.900000" in lower[0]


def test_lower_scores_allows_one_sample_only_between_different_models():
    assert _lower_scores([_record(0.9, 0.128)], [_record(0.875, 0.121)]) == []
    assert len(_lower_scores([_record(0.9, 0.128)], [_record(0.85, 0.121)])) == 1
    regressor = _lower_scores([_record(0.9, 0.128, estimator="MLPRegressor")],
                              [_record(0.875, 0.121, estimator="MLPRegressor")])
    assert len(regressor) == 1


def test_lower_scores_refuses_records_of_other_fits():
    with pytest.raises(ValueError, match="not of the same fit"):
        _lower_scores([_record(0.9, 0.1)], [_record(0.9, 0.1, n_samples=41)])
    with pytest.raises(ValueError, match="made 1 records, fastmlp's 0"):
        _lower_scores([_record(0.9, 0.1)], [])


def test_swap_import_swaps_the_one_line_and_refuses_others():
    source = '"""Uses sklearn.neural_network."""\nfrom sklearn.neural_network import MLPRegressor\n'
    line = "from sklearn.neural_network import MLPRegressor"
    assert swap_import(source, line) == ('"""Uses sklearn.neural_network."""\n'
                                         "from fastmlp.sklearn import MLPRegressor\n")
    with pytest.raises(ValueError, match="found it 0 times"):
        swap_import(source, "from sklearn.neural_network import MLPClassifier")
    with pytest.raises(ValueError, match="imports scikit-learn's estimators again"):
        swap_import(source + "import sklearn.neural_network as nn\n", line)
