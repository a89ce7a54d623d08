"""Focal loss (Lin et al. 2017) for single-label multi-class logits, and the loss factory.

Layout follows kornia `losses/focal.py`: a pure function `focal_loss` plus a thin
`FocalLoss` module that stores its settings; `build_loss` turns the `loss.*` params into one.

Conventions (the references disagree, so they are fixed here):

- alpha None: every class weighs 1.
- alpha a number a in (0, 1]: one global weight, the same for every class, so
  `focal_loss(..., alpha=a) == a * focal_loss(..., alpha=None)`. The binary convention
  (a for the positive class, 1 - a for the negative) has no meaning with four classes.
- alpha a sequence / tensor of C non-negative weights: alpha_t is the weight of the sample's
  true class (class-balancing, as `weight=` in `F.cross_entropy`).
- reduction "mean": the plain mean of the per-sample losses, sum / B, as kornia does. It is
  NOT PyTorch's weighted mean (sum / sum of alpha_t), so alpha scales the loss and does not
  cancel out when a batch holds only one class. gamma = 0 and alpha None is exactly
  `F.cross_entropy`; gamma = 0 with per-class alpha is `F.cross_entropy(weight=alpha,
  reduction="sum") / B`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, assert_never

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from respiro.core.config import LossName

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

Alpha = None | float | Sequence[float] | Tensor
Reduction = Literal["mean", "sum", "none"]


def _alpha_tensor(alpha: Alpha, num_classes: int) -> Tensor | None:
    """alpha as None, a 0-d tensor (global weight) or a `(C,)` tensor. Its values are the
    params schema's to check (`loss.alpha`); here only its shape."""
    if alpha is None:
        return None
    tensor = alpha if isinstance(alpha, Tensor) else torch.tensor(alpha, dtype=torch.float32)
    if tensor.ndim != 0 and tensor.shape != (num_classes,):
        raise ValueError(f"alpha must be a scalar or have shape ({num_classes},), got {tuple(tensor.shape)}")
    return tensor


def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: Alpha = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Multi-class focal loss `FL = -alpha_t * (1 - p_t)^gamma * log(p_t)`.

    Args:
        logits: `(B, C)` unnormalised scores, C >= 2.
        target: `(B,)` integer class indices in [0, C).
        gamma: focusing parameter >= 0; 0 gives (weighted) cross-entropy.
        alpha: None, a global weight in (0, 1], or C per-class weights (see module docstring).
        reduction: "none" -> `(B,)`, "sum" -> `()`, "mean" -> `()` = sum / B.

    Returns:
        The loss, in the dtype of `log_softmax(logits)`.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (B, C) with C >= 2, got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")
    alpha_t = _alpha_tensor(alpha, logits.shape[1])

    logp_t = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)  # (B,)
    # 1 - p_t with p_t = exp(logp_t), kept in the graph (focal loss differentiates the
    # modulating factor too). expm1 keeps 1 - p_t accurate when p_t is near 1. The floor at the
    # smallest normal number matters only when p_t rounds to exactly 1 (saturated logits): there
    # d(q^gamma)/dq is infinite for gamma < 1 and would turn the 0 * inf product into NaN; the
    # loss there is 0 either way because log p_t is 0.
    one_minus_p_t = (-torch.expm1(logp_t)).clamp_min(torch.finfo(logp_t.dtype).tiny)
    loss = -one_minus_p_t.pow(gamma) * logp_t  # (B,)
    if alpha_t is not None:
        alpha_t = alpha_t.to(device=loss.device, dtype=loss.dtype)
        loss = loss * (alpha_t if alpha_t.ndim == 0 else alpha_t[target])

    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FocalLoss(nn.Module):
    """`focal_loss` with stored settings: `(B, C), (B,) -> ()` (or `(B,)` for "none").

    alpha is a buffer (None, 0-d or `(C,)`), so it follows `.to(device)` and is saved in the
    state dict.
    """

    alpha: Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Alpha = None,
        reduction: Reduction = "mean",
        num_classes: int = 4,  # the paper's four; train passes its scheme's count
    ) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.gamma = float(gamma)
        self.reduction: Reduction = reduction
        self.register_buffer("alpha", _alpha_tensor(alpha, num_classes))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.reduction)

    def extra_repr(self) -> str:
        alpha = None if self.alpha is None else self.alpha.tolist()
        return f"gamma={self.gamma}, alpha={alpha}, reduction={self.reduction!r}"


def build_loss(name: LossName, gamma: float, alpha: None | float | Sequence[float], num_classes: int = 4) -> FocalLoss:
    """The training loss named by the `loss.*` params (values checked by the params schema),
    with mean reduction. "ce" is focal loss with gamma = 0, i.e. cross-entropy weighted by
    alpha with the same mean as "focal", so the two differ only in gamma. `num_classes`: the
    class scheme's (classes.scheme; the train stage passes it), which a list alpha has one
    weight for; 4 is the paper's, as in FocalLoss and build_model."""
    if name == "focal":
        return FocalLoss(gamma=gamma, alpha=alpha, num_classes=num_classes)
    if name == "ce":
        return FocalLoss(gamma=0.0, alpha=alpha, num_classes=num_classes)
    assert_never(name)
