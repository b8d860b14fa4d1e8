"""A torch.nn.Module (one nn.Linear producing logits) trained with torch.optim."""

from __future__ import annotations

import torch
from torch import nn

from logreg.impls import torch_common as tc
from logreg.impls.base import batches, head_of
from logreg.impls.torch_sparse import is_sparse_rows


class LogisticRegression(nn.Module):
    """Logits of logistic regression; the loss applies sigmoid / softmax stably."""

    def __init__(self, n_features: int, n_outputs: int):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, X):
        if is_sparse_rows(X):  # torch sparse CSR rows: X @ W^T + b with a stored-transpose backward
            return tc.linear(X, self.linear.weight.t(), self.linear.bias)
        return self.linear(X)


class Model:
    def __init__(self, config, W0, b0, device="cpu"):
        self.device = torch.device(device)
        self.dtype = tc.DTYPES[config.dtype]
        d, k = W0.shape
        self.net = LogisticRegression(d, k).to(device=self.device, dtype=self.dtype)
        with torch.no_grad():  # the same initial weights as the other implementations
            self.net.linear.weight.copy_(torch.as_tensor(W0.T))
            self.net.linear.bias.copy_(torch.as_tensor(b0))
        self.head = head_of(config, k)
        self.batch_size = config.batch_size
        # Weight decay on the weights only, as the hand-written optimizers do: two
        # parameter groups. Without decay one group does the same maths, and each
        # group costs several microseconds of bookkeeping per step.
        lin = self.net.linear
        groups = [{"params": [lin.weight, lin.bias], "weight_decay": 0.0}]
        if config.weight_decay:
            groups = [
                {"params": [lin.weight], "weight_decay": config.weight_decay},
                {"params": [lin.bias], "weight_decay": 0.0},
            ]
        # fused=True: one kernel updates every parameter of a group (the same maths
        # as the default for-loop implementation).
        if config.optimizer == "adam":
            self.opt = torch.optim.Adam(groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=True)
        else:
            self.opt = torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, fused=True
            )
        self.scheduler = tc.make_scheduler(config, self.opt)
        # torch.optim's own step, without the wrapper Optimizer patches around it (a profiler
        # record_function and the step-hook loops: 7-20 us a call, a fifth of a small-data epoch;
        # this class registers no hooks). With a scheduler the wrapped step stays: the scheduler
        # checks through it that the optimizer stepped first.
        self._step = self.opt.step if self.scheduler is not None else tc.unhooked_step(self.opt)
        self.lr_used = config.lr
        self._block: int | None = None  # rows per full-batch block, fixed by the first epoch
        self._params = [self.net.linear.weight, self.net.linear.bias]
        self._loss = tc.make_loss(self.net, self.head, config.compile)

    def _zero_grad(self) -> None:
        # What opt.zero_grad(set_to_none=True) does, without its profiler wrapper
        # (several microseconds, a tenth of a small-data epoch).
        for p in self._params:
            p.grad = None

    def put(self, X, y):
        return tc.put(X, y, self.head, self.dtype, self.device)

    def train_epoch(self, data, order=None) -> None:
        X, target, _ = data
        n = len(X)
        self.lr_used = self.opt.param_groups[0]["lr"]
        if order is None:
            self._zero_grad()
            if self._block is None:
                self._block = tc.cpu_block(self.device, X)
            for loss in tc.full_batch_loss(self._loss, X, target, self._block):
                loss.backward()
            self._step()
        else:
            order_t = torch.from_numpy(order).to(self.device)
            for idx in batches(n, order_t, self.batch_size, None):
                self._zero_grad()
                loss = self._loss(X[idx], target[idx])
                loss.backward()
                self._step()
        if self.scheduler is not None:  # torch.optim.lr_scheduler: once per epoch
            self.scheduler.step()

    def synchronize(self) -> None:
        tc.synchronize(self.device)

    def evaluate(self, data):
        return tc.evaluate(self.net, data, self.head)

    def predict_proba(self, data):
        return tc.predict_proba(self.net, data, self.head)

    def get_params(self):
        lin = self.net.linear
        return lin.weight.detach().cpu().numpy().T.copy(), lin.bias.detach().cpu().numpy().copy()

    def get_layers(self):
        return [self.get_params()]

    def learning_rate(self) -> float:
        return self.lr_used
