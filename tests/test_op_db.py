"""Every row of the op table (tests/op_db.py, tests/op_db_functional.py) against PyTorch and
finite differences, on the default device; then what a table row cannot say.

``test_op`` is the one test body: for each row, Hypothesis draws a dtype and an argument
tuple; ``op_db.check_row`` compares values, dtypes and gradients with torch, then runs the
float64 ``gradcheck``. The rest: in-place ops and the version counter, topk's indices,
einsum's errors, new_* tensors, comparison operators, ``bool(t)``, ``grad_fn``.
"""

import numpy as np
import op_db
import op_db_functional
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_db import host

import tinyllm as tl

ROWS = op_db.OPS + op_db_functional.OPS


def test_rows_have_distinct_names():
    names = [op.name for op in ROWS]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("op", ROWS, ids=[op.name for op in ROWS])
def test_op(torch, op):
    # database=None: the rows share this inner function, so they must not share saved examples
    @settings(max_examples=op.max_examples, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data())
    def run(data):
        dtype = data.draw(st.sampled_from(op.dtypes), label="dtype")
        args = data.draw(op.sample(dtype), label="args")
        op_db.check_row(torch, op, args, dtype)

    run()


# ============================================================================ in place


INPLACE = [
    ("add_", lambda x, y: x.add_(y)), ("add_alpha", lambda x, y: x.add_(y, alpha=-2.0)),
    ("sub_", lambda x, y: x.sub_(y)), ("sub_alpha", lambda x, y: x.sub_(y, alpha=0.5)),
    ("mul_", lambda x, y: x.mul_(y)), ("div_", lambda x, y: x.div_(y + 10.0)),
    ("mul_scalar", lambda x, y: x.mul_(3.0)), ("clamp_", lambda x, y: x.clamp_(-0.5, 0.5)),
    ("clamp_min", lambda x, y: x.clamp_(min=0.0)), ("zero_", lambda x, y: x.zero_()),
    ("fill_", lambda x, y: x.fill_(2.5)), ("copy_", lambda x, y: x.copy_(y)),
    ("masked_fill_", lambda x, y: x.masked_fill_(y > 0, -1.0)), ("iadd", lambda x, y: x.__iadd__(y)),
    ("isub", lambda x, y: x.__isub__(y)), ("imul", lambda x, y: x.__imul__(y)),
    ("itruediv", lambda x, y: x.__itruediv__(y + 10.0)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,fn", INPLACE, ids=[i[0] for i in INPLACE])
def test_inplace_ops_as_torch(torch, name, fn, dtype):
    """Values, dtype and identity as torch's; y broadcasts against x; the version counter moves."""
    rng = np.random.default_rng(0)
    xh, yh = rng.standard_normal((2, 3)).astype(dtype), rng.standard_normal((3,)).astype(dtype)
    x, y = tl.tensor(xh), tl.tensor(yh)
    out = fn(x, y)
    tx = torch.tensor(xh)
    fn(tx, torch.tensor(yh))
    assert out is x and x.dtype == dtype and x.device == tl.get_device() and x._version == 1
    np.testing.assert_allclose(host(x), tx.numpy(), rtol=1e-6)


def test_inplace_refuses_a_tensor_that_requires_grad():
    w = tl.tensor([1.0, 2.0], requires_grad=True)
    for fn in (lambda w: w.add_(1.0), lambda w: w.mul_(2.0), lambda w: w.zero_(), lambda w: w.clamp_(0, 1),
               lambda w: w.copy_(tl.ones(2)), lambda w: w.fill_(0.0), lambda w: w.masked_fill_(w > 1, 0.0)):
        with pytest.raises(RuntimeError, match="no_grad"):
            fn(w)
    assert w.tolist() == [1.0, 2.0] and w._version == 0
    with tl.no_grad():
        w.add_(1.0).mul_(2.0)
    assert w.tolist() == [4.0, 6.0] and w.requires_grad and w._version == 2


def test_version_counter_saved_input_changed(torch):
    """y = x * w saves w for x's gradient; changing w in place before backward must raise (torch too)."""
    for m in (tl, torch):
        x = m.ones(3, requires_grad=True)
        w = m.ones(3) * 2.0
        y = x * w
        w.mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an in.?place operation"):
            y.sum().backward()


def test_version_counter_saved_output_changed(torch):
    """exp saves its output; changing it in place (under no_grad) before backward must raise."""
    for m in (tl, torch):
        x = m.ones(3, requires_grad=True)
        y = x.exp()
        with m.no_grad():
            y.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an in.?place operation"):
            y.sum().backward()


def test_version_counter_saved_mask_changed(torch):
    """masked_fill and where save their mask: changing a mask tensor in place before backward raises."""
    for m in (tl, torch):
        for op in (lambda x, mask: x.masked_fill(mask, 0.0), lambda x, mask: m.where(mask, x, 0.0)):
            x = m.ones(3, requires_grad=True)
            mask = m.tensor([True, False, True])
            y = op(x, mask)
            mask.fill_(False)
            with pytest.raises(RuntimeError, match="modified by an in.?place operation"):
                y.sum().backward()


def test_copy_from_another_device():
    x = tl.zeros(3)
    other = "strict" if x.device == "cpu" else "cpu"
    x.copy_(tl.tensor([1.0, 2.0, 3.0], device=other))
    assert x.device == tl.get_device() and x.tolist() == [1.0, 2.0, 3.0]


def test_version_counter_allows_changes_no_backward_needs(torch):
    """x + w saves nothing: changing w afterwards is fine; so is a change before the op."""
    x = tl.ones(3, requires_grad=True)
    w = tl.ones(3)
    w.mul_(3.0)
    y = x * w + w
    w2 = tl.ones(3)
    z = x + w2
    w2.add_(5.0)
    (y.sum() + z.sum()).backward()
    assert x.grad.tolist() == [4.0, 4.0, 4.0]


# ============================================================================ what the rows can't say


def test_topk_indices_equal_torchs_on_distinct_values(torch):
    x = tl.tensor(np.random.default_rng(0).permutation(24).reshape(2, 3, 4).astype(np.float64) / 7)
    tx = torch.tensor(host(x))
    for k, dim, largest in [(2, -1, True), (3, 1, False), (1, 0, True), (4, 2, False), (0, 1, True)]:
        v, i = x.topk(k, dim=dim, largest=largest)
        tv, ti = tx.topk(k, dim=dim, largest=largest)
        assert i.dtype == np.int64 and not i.requires_grad
        np.testing.assert_array_equal(host(i), ti.numpy())
        np.testing.assert_array_equal(host(v), tv.numpy())
    with pytest.raises(ValueError, match="out of range"):
        x.topk(5, dim=-1)


@pytest.mark.parametrize("equation,shapes,match", [
    ("i...,j->ij", [(2, 3), (4,)], "ellipsis"),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], "one or two"),
    ("ij,jk->ik", [(2, 3)], "one or two"),
    ("ijk,jk->ik", [(2, 3), (3, 4)], "does not match"),
    ("ii->i", [(3, 3)], "repeated index"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "index 'j' has size"),
    ("ij->iz", [(2, 3)], "must name distinct indices"),
    ("ij->ii", [(2, 3)], "must name distinct indices"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_einsum_errors(equation, shapes, match):
    with pytest.raises(ValueError, match=match):
        tl.einsum(equation, *[tl.ones(*s) for s in shapes])


def test_new_tensors_take_dtype_and_device():
    x = tl.randn(2, 3, dtype=tl.float64, requires_grad=True)
    z = x.new_zeros(4, 5)
    assert z.shape == (4, 5) and z.dtype == np.float64 and z.device == x.device and not z.requires_grad
    assert x.new_zeros((2,), dtype=tl.int64).dtype == np.int64 and x.new_ones([3]).tolist() == [1.0] * 3
    assert x.new_full((2,), 7.0, dtype=tl.float32).dtype == np.float32
    assert x.new_zeros(()).shape == () and x.new_zeros(0, 3).shape == (0, 3)
    other = "strict" if x.device == "cpu" else "cpu"
    assert x.to(other).new_ones(2).device == other


def test_comparison_operators_give_bool_tensors_without_grad():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tl.tensor([3.0, 2.0, 1.0], requires_grad=True)
    results = [x < y, x <= y, x > y, x >= y, x == y, x != y, x == 2.0, 2.0 < x, x.eq(y), tl.ne(x, 2.0)]
    for r in results:
        assert isinstance(r, tl.Tensor) and r.dtype == np.bool_ and not r.requires_grad and r.grad_fn is None
    assert (x == y).tolist() == [False, True, False] and (x != y).tolist() == [True, False, True]
    assert (2.0 < x).tolist() == [False, False, True]
    assert x in {x: 1} and y not in {x: 1}  # hashing stays by identity though == is elementwise


def test_bool_of_a_tensor():
    assert bool(tl.tensor([1.0])) and not bool(tl.tensor(0.0)) and bool(tl.tensor([[True]]))
    assert tl.tensor([2.0, 3.0]).eq(2.0).any() and not tl.tensor([2.0, 3.0]).eq(2.0).all()
    for t in (tl.tensor([1.0, 2.0]), tl.zeros(0)):
        with pytest.raises(RuntimeError, match="ambiguous"):
            bool(t)
    with pytest.raises(RuntimeError, match="ambiguous"):
        if tl.tensor([1.0, 2.0]) == tl.tensor([1.0, 2.0]):
            pass


def test_grad_fn():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    assert x.grad_fn is None and tl.tensor([1.0]).grad_fn is None
    y = (x * 2.0).sum()
    assert isinstance(y.grad_fn, tl.Function) and type(y.grad_fn).__name__ == "Sum"
    (mul,) = y.grad_fn.inputs
    assert type(mul.grad_fn).__name__ == "Mul" and mul.grad_fn.inputs[0] is x
    with tl.no_grad():
        assert (x * 2.0).grad_fn is None
    assert (tl.tensor([1.0]) * 2.0).grad_fn is None  # nothing to differentiate: no graph
    assert x.detach().grad_fn is None
