"""PyTorch raw tensors: autograd computes the gradients, the updates are written by hand."""

from __future__ import annotations

import torch

from logreg.impls import torch_common as tc
from logreg.impls.base import batches, head_of
from logreg.optim import make_optimizer, scheduled_lr


class Model:
    def __init__(self, config, W0, b0, device="cpu"):
        self.device = torch.device(device)
        self.dtype = tc.DTYPES[config.dtype]
        # Leaf tensors that autograd tracks.
        self.W = torch.tensor(W0, dtype=self.dtype, device=self.device, requires_grad=True)
        self.b = torch.tensor(b0, dtype=self.dtype, device=self.device, requires_grad=True)
        self.head = head_of(config, W0.shape[1])
        self.config, self.epochs_done, self.lr_used = config, 0, config.lr
        self.batch_size = config.batch_size
        self.opt = make_optimizer(config, [self.W, self.b], [config.weight_decay, 0.0])
        self._block: int | None = None  # rows per full-batch block, fixed by the first epoch
        self._loss = tc.make_loss(self._logits, self.head, config.compile)

    def put(self, X, y):
        return tc.put(X, y, self.head, self.dtype, self.device)

    def _logits(self, X):
        return tc.linear(X, self.W, self.b)

    def _step(self):
        with torch.no_grad():  # the update itself must not be recorded by autograd
            self.opt.step([self.W.grad, self.b.grad])
        self.W.grad = None  # clear explicitly: backward() accumulates
        self.b.grad = None

    def train_epoch(self, data, order=None) -> None:
        X, target, _ = data
        n = len(X)
        # The schedule's learning rate for this epoch (optim.scheduled_lr).
        self.opt.lr = self.lr_used = scheduled_lr(self.config, self.epochs_done)
        self.epochs_done += 1
        if order is None:
            # Full batch: sum the loss block by block and backpropagate each block
            # while it is in cache (gradients accumulate), then step once.
            if self._block is None:
                self._block = tc.cpu_block(self.device, X)
            for loss in tc.full_batch_loss(self._loss, X, target, self._block):
                loss.backward()
            self._step()
            return
        order_t = torch.from_numpy(order).to(self.device)
        for idx in batches(n, order_t, self.batch_size, None):
            loss = self._loss(X[idx], target[idx])
            loss.backward()
            self._step()

    def synchronize(self) -> None:
        tc.synchronize(self.device)

    def evaluate(self, data):
        return tc.evaluate(self._logits, data, self.head)

    def predict_proba(self, data):
        return tc.predict_proba(self._logits, data, self.head)

    def get_params(self):
        return self.W.detach().cpu().numpy().copy(), self.b.detach().cpu().numpy().copy()

    def get_layers(self):
        return [self.get_params()]

    def learning_rate(self) -> float:
        return self.lr_used
