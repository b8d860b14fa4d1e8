"""Update rules of the hand-written implementations, with torch.optim semantics.

Written with arithmetic operators only, so one class serves NumPy arrays and
torch tensors alike (the autograd implementation calls `step` under
`torch.no_grad()`). Parameters are updated in place. As in our `module`
implementation, weight decay applies to the weights, not the bias: each
parameter comes with its own decay, a number, an array broadcast against the
parameter (the NumPy implementation keeps W and b in one array), or None.
"""

from __future__ import annotations

import math


def _decays(wd) -> bool:
    """Whether a decay (number, array or None) changes the gradient at all."""
    if wd is None:
        return False
    return not isinstance(wd, (int, float)) or wd != 0


class SGD:
    """torch.optim.SGD: with momentum mu and dampening 0,

    g = grad + wd * p;  buf = mu * buf + g  (buf = g at the first step)
    g = g + mu * buf  if nesterov else buf;  p -= lr * g
    """

    def __init__(self, params, decays, lr: float, momentum: float = 0.0, nesterov: bool = False):
        self.params, self.decays = list(params), [wd if _decays(wd) else None for wd in decays]
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.bufs = [None] * len(self.params)

    def step(self, grads) -> None:
        for i, (p, g, wd) in enumerate(zip(self.params, grads, self.decays, strict=True)):
            if wd is not None:
                g = g + wd * p
            if self.momentum:
                if self.bufs[i] is None:
                    self.bufs[i] = g * 1  # a copy: later updates are in place
                else:
                    self.bufs[i] *= self.momentum
                    self.bufs[i] += g
                g = g + self.momentum * self.bufs[i] if self.nesterov else self.bufs[i]
            p -= self.lr * g


class Adam:
    """torch.optim.Adam (coupled L2, no amsgrad):

    g = grad + wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    def __init__(self, params, decays, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.decays = list(params), [wd if _decays(wd) else None for wd in decays]
        self.lr, self.eps = lr, eps
        self.b1, self.b2 = betas
        self.m = [p * 0 for p in self.params]
        self.v = [p * 0 for p in self.params]
        self.t = 0

    def step(self, grads) -> None:
        self.t += 1
        bc1 = 1 - self.b1**self.t
        bc2_sqrt = (1 - self.b2**self.t) ** 0.5
        for p, g, wd, m, v in zip(self.params, grads, self.decays, self.m, self.v, strict=True):
            if wd is not None:
                g = g + wd * p
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * (g * g)
            # The same expression as the docstring's, with the temporaries updated
            # in place (fewer allocations per step): step = lr/bc1 * m / denom.
            denom = v**0.5
            denom /= bc2_sqrt
            denom += self.eps
            step = (self.lr / bc1) * m
            step /= denom
            p -= step


def make_optimizer(config, params, decays):
    """The hand-written optimizer a TrainConfig asks for."""
    if config.optimizer == "adam":
        return Adam(params, decays, config.lr, config.betas, config.eps)
    return SGD(params, decays, config.lr, config.momentum, config.nesterov)


def scheduled_lr(config, epoch: int) -> float:
    """The learning rate of epoch `epoch` (0-based) under `config.schedule`, computed by hand.

    The same values as the `module` implementation's torch.optim.lr_scheduler chain
    (impls.torch_common.make_scheduler): warm-up LinearLR from lr / (w + 1) to lr over
    w = warmup_epochs epochs, then, counting t epochs from its end,
        constant     lr
        step         lr * gamma ** (t // step_size)             (StepLR)
        exponential  lr * gamma ** t                            (ExponentialLR)
        cosine       lr * (1 + cos(pi * t / T_max)) / 2,  T_max = epochs - w  (CosineAnnealingLR)
    """
    w = config.warmup_epochs
    if epoch < w:
        start = 1.0 / (w + 1)
        return config.lr * (start + (1.0 - start) * epoch / w)
    t = epoch - w
    if config.schedule == "step":
        return config.lr * config.gamma ** (t // config.step_size)
    if config.schedule == "exponential":
        return config.lr * config.gamma**t
    if config.schedule == "cosine":
        return config.lr * (1 + math.cos(math.pi * t / (config.epochs - w))) / 2
    return config.lr
