"""Optimizers against their formulas, and schedules at their end points."""

import math

import numpy as np
import pytest

from fastmlp import optim


def one_layer(value=1.0):
    """Two layers, so a bug that leaks state from one array to the next shows."""
    return [(np.full((2, 2), value), np.full(2, value)),
            (np.full((1, 2), value), np.full(1, value))]


grads_of = one_layer


def assert_all(params, expected):
    """Every parameter array of every layer equals ``expected``."""
    for layer in params:
        for p in layer:
            np.testing.assert_allclose(p, expected)


def test_plain_sgd_steps_against_the_gradient():
    params = one_layer(1.0)
    optim.SGD(0.1).step(params, grads_of(2.0))
    assert_all(params, 0.8)


def test_momentum_and_nesterov_follow_torch_formulas():
    # With constant gradient g: v1 = g, v2 = mu*g + g.
    params = one_layer(0.0)
    sgd = optim.SGD(0.1, momentum=0.9)
    sgd.step(params, grads_of(1.0))
    sgd.step(params, grads_of(1.0))
    assert_all(params, -0.1 * (1 + 1.9))

    params = one_layer(0.0)
    nesterov = optim.SGD(0.1, momentum=0.9, nesterov=True)
    nesterov.step(params, grads_of(1.0))  # step g + mu*v1 = 1.9
    nesterov.step(params, grads_of(1.0))  # step g + mu*v2 = 1 + 0.9*1.9
    assert_all(params, -0.1 * (1.9 + 1 + 0.9 * 1.9))


def test_weight_decay_adds_l2_gradient():
    params = one_layer(2.0)
    optim.SGD(0.1, weight_decay=0.5).step(params, grads_of(0.0))
    assert_all(params, 2.0 - 0.1 * 0.5 * 2.0)


def test_adam_first_step_has_size_learning_rate():
    params = one_layer(0.0)
    optim.Adam(0.01).step(params, [(np.array([[3.0, -2.0], [1e-3, 5.0]]), np.array([1.0, -1.0]))])
    np.testing.assert_allclose(params[0][0], [[-0.01, 0.01], [-0.01, -0.01]], rtol=1e-4)
    np.testing.assert_allclose(params[0][1], [-0.01, 0.01], rtol=1e-6)


def test_adamw_decays_weights_separately_from_the_gradient():
    params = one_layer(1.0)
    optim.AdamW(0.1, weight_decay=0.5).step(params, grads_of(0.0))
    # zero gradient: only the decoupled decay acts, p *= 1 - lr * wd
    assert_all(params, 0.95)
    params = one_layer(1.0)
    optim.Adam(0.1, weight_decay=0.5).step(params, grads_of(0.0))
    # coupled decay: the L2 gradient goes through Adam's normalisation, a step of lr
    assert_all(params, 0.9)


def test_adam_matches_its_definition_over_several_steps():
    rng = np.random.default_rng(0)
    p = rng.standard_normal(5)
    params = [(p.reshape(1, 5).copy(), np.zeros(1))]
    adam = optim.Adam(0.01, beta1=0.8, beta2=0.9, eps=1e-6)
    m = v = np.zeros(5)
    for t in range(1, 6):
        g = rng.standard_normal(5)
        adam.step(params, [(g.reshape(1, 5), np.zeros(1))])
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g**2
        p = p - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.9**t)) + 1e-6)
    np.testing.assert_allclose(params[0][0].ravel(), p, rtol=1e-10)


@pytest.mark.parametrize("bad", [dict(learning_rate=-1), dict(momentum=float("nan")),
                                 dict(weight_decay=-0.1)])
def test_bad_hyperparameters_are_rejected(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        optim.SGD(**bad)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov momentum requires momentum > 0"):
        optim.SGD(0.1, nesterov=True)


def test_schedules_start_and_end_where_documented():
    total = 1000
    assert optim.constant(500, total) == 1.0
    assert optim.cosine(0, total) == 1.0
    assert optim.cosine(total, total) == pytest.approx(0.0)
    assert optim.cosine(total // 2, total) == pytest.approx(0.5)
    assert optim.onecycle(0, total) == pytest.approx(1 / 25)
    assert optim.onecycle(300, total) == pytest.approx(1.0)
    assert optim.onecycle(total, total) == pytest.approx(1 / 25 / 1e4)
    values = [optim.onecycle(s, total) for s in range(total + 1)]
    assert max(values) == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:300], values[1:301]))
    assert all(a >= b for a, b in zip(values[300:], values[301:]))
    assert math.isclose(max(values), values[300])


def test_annealed_follows_the_schedule_then_falls_along_a_half_cosine_to_its_end():
    total, start, length = 1000, 200, 100
    factor = optim.annealed(optim.onecycle, start, length)
    assert [factor(s, total) for s in range(start)] == \
        [optim.onecycle(s, total) for s in range(start)]
    first, end = optim.onecycle(start, total), optim.onecycle(total, total)
    # still warming up: 2/3 of the way from 1/25 to 1 along a cosine
    assert factor(start, total) == first == pytest.approx(1 - (1 - 1 / 25) / 4, rel=1e-12)
    assert factor(start + length // 2, total) == pytest.approx((first + end) / 2, rel=1e-12)
    assert factor(start + length // 4, total) == pytest.approx(
        end + (first - end) * (2 + math.sqrt(2)) / 4, rel=1e-12)  # cos(pi / 4)
    assert [factor(s, total) for s in (start + length, 500, total)] == [end, end, end]
    anneal = [factor(s, total) for s in range(start, start + length + 1)]
    assert all(a > b for a, b in zip(anneal, anneal[1:]))


def test_an_anneal_that_would_outlast_training_ends_with_it():
    factor = optim.annealed(optim.cosine, 900, 400)  # only 100 steps are left
    assert factor(950, 1000) == pytest.approx(optim.cosine(900, 1000) / 2, rel=1e-12)
    assert factor(1000, 1000) == 0.0


def test_only_a_schedule_that_comes_down_anneals():
    assert [optim.anneals(optim.SCHEDULES[name]) for name in ("constant", "cosine", "onecycle")] \
        == [False, True, True]
    factor = optim.annealed(optim.constant, 10, 10)
    assert {factor(s, 100) for s in range(101)} == {1.0}


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="unknown schedule 'step'; choose from constant, cosine"):
        optim.get_schedule("step")
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose from sgd"):
        optim.make_optimizer("rmsprop", 0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.5),
                                  lambda: optim.SGD(0.1, momentum=0.5, nesterov=True,
                                                    weight_decay=1e-3),
                                  lambda: optim.Adam(1e-3), lambda: optim.AdamW(1e-3)],
                         ids=["momentum", "nesterov-wd", "adam", "adamw"])
def test_state_that_decays_below_the_smallest_normal_float_becomes_zero(dtype, make):
    # One gradient, then zeros: the momentum or moments decay geometrically; a
    # subnormal value would make every later step on it slow. NaN stays NaN.
    params = [(np.ones((2, 3), dtype), np.zeros(3, dtype))]
    opt = make()
    first = [(np.array([[1, -1, 0.5], [2, 0, 0]], dtype), np.array([1, np.nan, 0], dtype))]
    zero = [(np.zeros((2, 3), dtype), np.zeros(3, dtype))]
    opt.step(params, first)
    tiny = np.finfo(dtype).tiny
    for _ in range(7000 if dtype == np.float64 else 900):  # 0.9 ** 6800 < float64 tiny
        opt.step(params, zero)
        for state in (getattr(opt, name, None) for name in ("velocity", "m", "v")):
            for array in state or ():
                finite = array[np.isfinite(array)]
                assert not ((finite != 0) & (np.abs(finite) < tiny)).any()
    state = opt.velocity if isinstance(opt, optim.SGD) else opt.m
    if isinstance(opt, optim.Adam) or not opt.weight_decay:  # else p keeps a gradient
        assert (state[0] == 0).all()  # the whole W's state has decayed to zero
        assert state[1][0] == 0
    assert np.isnan(state[1][1])


@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.5), lambda: optim.AdamW(1e-3)],
                         ids=["momentum", "adamw"])
def test_the_fused_epoch_flushes_the_same_state_to_zero(make):
    from fastmlp.backends import load_backend

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    x[:, 0] = 0  # an input that is always blank: its weights' gradient is always 0
    y = rng.integers(0, 3, 64)
    params = [((0.5 * rng.standard_normal((4, 5))).astype(np.float32), np.zeros(4, np.float32)),
              ((0.5 * rng.standard_normal((3, 4))).astype(np.float32), np.zeros(3, np.float32))]
    opt = make()
    opt.init_state(params)
    state = opt.velocity if isinstance(opt, optim.SGD) else opt.m
    state[0][:, 0] = 1.0  # and a momentum that can only decay
    load_backend("numba").train_epoch(params, x, y, 1, opt, np.full(64, 1e-3))
    for _ in range(14):
        load_backend("numba").train_epoch(params, x, y, 1, opt, np.full(64, 1e-3))
    # 0.5 ** 960 and 0.9 ** 960 are below float32's smallest normal number
    assert (state[0][:, 0] == 0).all()
