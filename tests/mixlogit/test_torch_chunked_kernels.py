"""torch evaluates long elementwise kernels in cache-sized chunks (``mixlogit/torch/_ops.py``,
``in_chunks``) once the broadcast batch exceeds two chunks: the values, the gradients and the
second derivatives must be those of the same kernel on small pieces, whatever the batch's
shape and broadcasting."""

import numpy as np
import pytest
import torch

import mixlogit.torch as mt
from mixlogit.torch import _ops

ROWS, COLS = 700, 500  # 350,000 elements: chunked (more than 2 * CHUNK_ELEMENTS)
assert ROWS * COLS > 2 * _ops.CHUNK_ELEMENTS


def _inputs(seed):
    rng = np.random.default_rng(seed)
    d = torch.tensor(rng.normal(0.0, 4.0, (ROWS, COLS)), dtype=torch.float64)
    a = torch.tensor(rng.uniform(0.5, 3.0, COLS), dtype=torch.float64)  # broadcast per column
    b = torch.tensor(1.7, dtype=torch.float64)  # a scalar parameter
    return d, a, b


MARGINALS = {
    "gamma": lambda d, a, b: mt.gamma_logit_marginal(d, a, b * 10.0),
    "lognormal": lambda d, a, b: mt.lognormal_logit_marginal(d, -a, b * 0.4),
}


def _by_rows(fn, d, a, b, rows=50):
    """The same marginal on pieces of 50 rows (25,000 elements: never chunked)."""
    return torch.cat([fn(d[i : i + rows], a, b) for i in range(0, ROWS, rows)])


@pytest.mark.parametrize("name", sorted(MARGINALS))
def test_chunked_values_and_gradients_are_the_pieces(name):
    fn = MARGINALS[name]
    d, a, b = _inputs(1931)
    leaves = [x.clone().requires_grad_() for x in (d, a, b)]
    value = fn(*leaves)
    assert value.shape == (ROWS, COLS)
    grads = torch.autograd.grad(value.sum(), leaves)
    pieces = [x.clone().requires_grad_() for x in (d, a, b)]
    reference = _by_rows(fn, *pieces)
    expected = torch.autograd.grad(reference.sum(), pieces)
    torch.testing.assert_close(value, reference, rtol=1e-15, atol=0)
    torch.testing.assert_close(grads[0], expected[0], rtol=1e-14, atol=0)  # per element
    # the broadcast parameters sum 350,000 terms in another order
    for got, want in zip(grads[1:], expected[1:], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(fn(d, a, b), reference.detach(), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", sorted(MARGINALS))
def test_chunked_second_derivatives_are_the_pieces(name):
    fn = MARGINALS[name]
    d, a, b = _inputs(1932)
    b = b.clone().requires_grad_()
    (first,) = torch.autograd.grad(fn(d, a, b).sum(), b, create_graph=True)
    (second,) = torch.autograd.grad(first, b)
    b_ref = b.detach().clone().requires_grad_()
    (first_ref,) = torch.autograd.grad(_by_rows(fn, d, a, b_ref).sum(), b_ref, create_graph=True)
    (second_ref,) = torch.autograd.grad(first_ref, b_ref)
    torch.testing.assert_close(second, second_ref, rtol=1e-10, atol=0)
    assert float(second) != 0.0


def test_only_batches_beyond_two_chunks_are_split():
    calls = []

    def fn(x, y):
        calls.append(x.shape)
        return x * y

    x = torch.ones(2 * _ops.CHUNK_ELEMENTS)
    _ops.in_chunks(fn, (x, torch.tensor(2.0)))
    assert calls == [x.shape]
    calls.clear()
    out = _ops.in_chunks(fn, (torch.ones(2 * _ops.CHUNK_ELEMENTS + 1), torch.tensor(2.0)))
    assert calls == [(_ops.CHUNK_ELEMENTS,), (_ops.CHUNK_ELEMENTS,), (1,)]
    assert out.shape == (2 * _ops.CHUNK_ELEMENTS + 1,) and bool((out == 2.0).all())
