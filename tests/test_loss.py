"""Behaviour of the focal loss and the loss factory, checked against hand arithmetic."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from respiro.model.loss import FocalLoss, build_loss, focal_loss

# Three samples, four classes, computed by hand below.
LOGITS = [[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -2.0], [1.0, 1.0, 1.0, 1.0]]
TARGET = [0, 1, 3]
ALPHA = [0.25, 0.5, 1.0, 2.0]


def hand_focal(gamma: float, alpha: list[float] | None) -> list[float]:
    """-alpha_t * (1 - p_t)^gamma * log(p_t) per sample, with plain math."""
    out = []
    for z, t in zip(LOGITS, TARGET):
        p_t = math.exp(z[t]) / sum(math.exp(v) for v in z)
        a_t = 1.0 if alpha is None else alpha[t]
        out.append(-a_t * (1 - p_t) ** gamma * math.log(p_t))
    return out


def test_hand_computed_case_gamma2_per_class_alpha() -> None:
    # Sample 0: p_t = e^2 / (e^2 + e^0.5 + e^-1 + 1) = 0.7177..., alpha 0.25
    # Sample 1: p_t = e^0.2 / (e^0.1 + e^0.2 + e^3 + e^-2) = 0.0502..., alpha 0.5
    # Sample 2: p_t = 1/4 (equal logits), alpha 2.0: 2 * 0.75^2 * log 4
    p0 = math.exp(2) / (math.exp(2) + math.exp(0.5) + math.exp(-1) + 1)
    p1 = math.exp(0.2) / (math.exp(0.1) + math.exp(0.2) + math.exp(3) + math.exp(-2))
    expected = [
        -0.25 * (1 - p0) ** 2 * math.log(p0),
        -0.5 * (1 - p1) ** 2 * math.log(p1),
        -2.0 * 0.75**2 * math.log(0.25),
    ]
    assert expected == pytest.approx(hand_focal(2.0, ALPHA), rel=1e-12)
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    per_sample = focal_loss(logits, target, gamma=2.0, alpha=ALPHA, reduction="none")
    assert per_sample.tolist() == pytest.approx(expected, rel=1e-5)
    assert focal_loss(logits, target, 2.0, ALPHA, "sum").item() == pytest.approx(sum(expected), rel=1e-5)
    # "mean" is the plain mean over samples: sum / B, not sum / sum(alpha_t).
    assert focal_loss(logits, target, 2.0, ALPHA, "mean").item() == pytest.approx(sum(expected) / 3, rel=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gamma0_without_alpha_is_cross_entropy(reduction: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(64, 4) * 3
    target = torch.randint(0, 4, (64,))
    expected = F.cross_entropy(logits, target, reduction=reduction)
    # 1e-6 relative: "sum" adds 64 float32 terms, so its absolute rounding is larger.
    torch.testing.assert_close(focal_loss(logits, target, 0.0, None, reduction), expected, rtol=1e-6, atol=1e-6)


def test_gamma0_per_class_alpha_is_cross_entropy_sum_over_batch_size() -> None:
    torch.manual_seed(0)
    logits = torch.randn(16, 4)
    target = torch.tensor([0] * 10 + [3] * 6)
    weight = torch.tensor(ALPHA)
    ours = focal_loss(logits, target, 0.0, ALPHA, "mean")
    torch.testing.assert_close(ours, F.cross_entropy(logits, target, weight=weight, reduction="sum") / 16)
    # and NOT PyTorch's weighted mean, which divides by the sum of the samples' weights
    assert not torch.allclose(ours, F.cross_entropy(logits, target, weight=weight))


def test_scalar_alpha_is_one_global_weight() -> None:
    torch.manual_seed(0)
    logits = torch.randn(10, 4)
    target = torch.randint(0, 4, (10,))
    plain = focal_loss(logits, target, 2.0, None, "none")
    torch.testing.assert_close(focal_loss(logits, target, 2.0, 0.25, "none"), 0.25 * plain)
    torch.testing.assert_close(focal_loss(logits, target, 2.0, [0.25] * 4, "none"), 0.25 * plain)
    torch.testing.assert_close(focal_loss(logits, target, 2.0, torch.tensor(0.25), "none"), 0.25 * plain)
    assert focal_loss(logits, target, 2.0, 1.0).item() == pytest.approx(plain.mean().item())


def test_reductions_and_shapes() -> None:
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    none = focal_loss(logits, target, 2.0, ALPHA, "none")
    assert none.shape == (3,)
    assert focal_loss(logits, target, 2.0, ALPHA, "sum").shape == ()
    torch.testing.assert_close(focal_loss(logits, target, 2.0, ALPHA, "sum"), none.sum())
    torch.testing.assert_close(focal_loss(logits, target, 2.0, ALPHA, "mean"), none.sum() / 3)


def test_focusing_downweights_easy_samples() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0]])
    target = torch.tensor([0, 0])  # easy, hard
    ce = focal_loss(logits, target, 0.0, None, "none")
    fl = focal_loss(logits, target, 2.0, None, "none")
    assert (fl < ce).all()
    assert (fl / ce)[0] < 0.01 < 0.9 < (fl / ce)[1]


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
def test_gradients_finite_for_saturated_logits(gamma: float) -> None:
    # p_t rounds to exactly 1 (or 0) in float32; gamma < 1 makes d(1-p)^gamma infinite there.
    big = 1e4
    logits = torch.full((4, 4), -big)
    logits[torch.arange(4), torch.tensor([0, 1, 2, 3])] = big
    logits.requires_grad_(True)
    target = torch.tensor([0, 1, 0, 3])  # two confident-right, one confident-wrong, one right
    loss = focal_loss(logits, target, gamma, ALPHA)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0  # the wrong sample still pushes


def test_gradient_flows_through_p_t() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2, 3])
    alpha = torch.tensor(ALPHA, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda z: focal_loss(z, target, 2.0, alpha, "sum"), (logits,))

    (grad,) = torch.autograd.grad(focal_loss(logits, target, 2.0, alpha, "sum"), logits)
    logp_t = F.log_softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    detached = (-alpha[target] * (1 - logp_t.exp().detach()) ** 2 * logp_t).sum()
    (grad_detached,) = torch.autograd.grad(detached, logits)
    assert not torch.allclose(grad, grad_detached)


def test_module_matches_function_and_moves_alpha() -> None:
    module = FocalLoss(gamma=2.0, alpha=ALPHA)
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    torch.testing.assert_close(module(logits, target), focal_loss(logits, target, 2.0, ALPHA))
    assert "alpha" in module.state_dict()
    assert module.to(torch.float64).alpha.dtype == torch.float64
    assert FocalLoss(alpha=None).alpha is None
    assert FocalLoss(alpha=0.5).alpha.shape == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_runs_on_cuda() -> None:
    module = FocalLoss(gamma=2.0, alpha=ALPHA).cuda()
    assert module.alpha.device.type == "cuda"
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    torch.testing.assert_close(module(logits.cuda(), target.cuda()).cpu(), module.cpu()(logits, target))


def test_build_loss_focal_and_ce() -> None:
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    focal = build_loss("focal", 2.0, ALPHA, 4)
    assert focal.gamma == 2.0 and focal.reduction == "mean"
    assert focal(logits, target).item() == pytest.approx(sum(hand_focal(2.0, ALPHA)) / 3, rel=1e-5)
    # "ce" ignores gamma and keeps alpha and the mean over samples.
    ce = build_loss("ce", 2.0, None, 4)
    torch.testing.assert_close(ce(logits, target), F.cross_entropy(logits, target))
    assert build_loss("ce", 2.0, ALPHA, 4)(logits, target).item() == pytest.approx(
        sum(hand_focal(0.0, ALPHA)) / 3, rel=1e-5
    )


# Values of loss.name, loss.gamma and loss.alpha are the params schema's (tests/test_params.py);
# the loss checks only what its callers control: reduction and shapes.


def test_function_validates_its_arguments() -> None:
    logits, target = torch.tensor(LOGITS), torch.tensor(TARGET)
    with pytest.raises(ValueError, match="reduction must be one of mean, sum, none"):
        focal_loss(logits, target, 2.0, None, "avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha must be"):
        focal_loss(logits, target, 2.0, torch.ones(3))
    with pytest.raises(ValueError, match="target must have shape"):
        focal_loss(logits, target[:2])
    with pytest.raises(ValueError, match="logits must have shape"):
        focal_loss(logits[:, :1], target)
