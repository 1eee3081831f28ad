"""The context model's step range, level input and prior initialisation (format v3)."""

from __future__ import annotations

import pytest
import torch

from progs.model.context import ContextConfig, ContextModel, gaussian_rate_bits


def _ctx(num_levels: int = 3) -> ContextModel:
    return ContextModel(ContextConfig(log2_table_3d=8, log2_table_2d=8, num_levels=num_levels), seed=1)


@pytest.mark.parametrize("bias, factor", [(20.0, 8.0), (0.0, 1.0), (-20.0, 1.0 / 8.0)])
def test_steps_span_an_eighth_to_eight_times_q0_in_both_paths(bias, factor):
    ctx = _ctx()
    with torch.no_grad():
        ctx.mlp_q[-1].weight.zero_()
        ctx.mlp_q[-1].bias.fill_(bias)
    ctx.round_weights_to_fixed_point()
    pos = torch.rand(5, 3, generator=torch.Generator().manual_seed(0))
    levels = torch.full((5,), 2)
    _, _, q_train = ctx(pos.float(), pos.float(), torch.ones(5, dtype=torch.bool), levels)
    q0 = torch.tensor(ctx.cfg.q0)
    assert torch.allclose(q_train, q0 * factor, rtol=1e-4)
    for use_kernel in (False, True):
        _, _, q_exact = ctx.coding_params(
            ctx.exact_features(pos.double(), use_kernel=use_kernel), None, use_kernel=use_kernel, level=2
        )
        assert torch.allclose(q_exact, q0.double() * factor, rtol=2e-3)


def test_level_input_changes_the_prediction_and_is_required():
    ctx = _ctx()
    pos = torch.rand(4, 3, generator=torch.Generator().manual_seed(2))
    has = torch.zeros(4, dtype=torch.bool)
    m1, _, _ = ctx(pos, pos, has, torch.full((4,), 1))
    m3, _, _ = ctx(pos, pos, has, torch.full((4,), 3))
    assert not torch.allclose(m1, m3)
    with pytest.raises(ValueError, match="levels"):
        ctx(pos, pos, has)
    ctx.round_weights_to_fixed_point()
    h = ctx.exact_features(pos.double())
    with pytest.raises(ValueError, match="level"):
        ctx.coding_params(h, None, level=None)
    a = ctx.coding_params(h, None, use_kernel=True, level=3)
    b = ctx.coding_params(h, None, use_kernel=False, level=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_fitted_prior_starts_at_the_constant_gaussian():
    g = torch.Generator().manual_seed(3)
    ctx = _ctx()
    D = ctx.cfg.attr_total
    attrs = torch.randn(400, D, generator=g) * 0.4 - 2.0
    ctx.fit_output_bias(attrs)
    pos = torch.rand(400, 3, generator=g)
    mean, scale, _ = ctx(pos, pos, torch.zeros(400, dtype=torch.bool), torch.full((400,), 1))
    step = torch.full_like(attrs, 0.05)
    fitted = gaussian_rate_bits(attrs, mean, scale, step).mean()
    constant = gaussian_rate_bits(attrs, attrs.mean(0).expand_as(attrs), attrs.std(0).expand_as(attrs), step).mean()
    assert float(fitted.detach()) <= float(constant) * 1.02
