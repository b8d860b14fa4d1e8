"""The mlp model with raw torch tensors: autograd computes the gradients, the updates are by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from logreg.impls import torch_common as tc
from logreg.impls.base import LEAKY_RELU_SLOPE, batches, head_of
from logreg.optim import make_optimizer, scheduled_lr

ACTIVATIONS = {
    "relu": F.relu,
    "leaky_relu": lambda A: F.leaky_relu(A, LEAKY_RELU_SLOPE),
    "tanh": torch.tanh,
    "none": lambda A: A,
}


class Model:
    def __init__(self, config, layers, device="cpu"):
        self.device = torch.device(device)
        self.dtype = tc.DTYPES[config.dtype]
        # Leaf tensors that autograd tracks: W1 (d, h), b1 (h,), W2 (h, k), b2 (k,).
        self.params = [
            torch.tensor(a, dtype=self.dtype, device=self.device, requires_grad=True)
            for layer in layers
            for a in layer
        ]
        self.act = ACTIVATIONS[config.activation]
        self.head = head_of(config, layers[-1][0].shape[1])
        self.config, self.epochs_done, self.lr_used = config, 0, config.lr
        self.batch_size = config.batch_size
        wd = config.weight_decay
        self.opt = make_optimizer(config, self.params, [wd, 0.0, wd, 0.0])

    def put(self, X, y):
        return tc.put(X, y, self.head, self.dtype, self.device)

    def _logits(self, X):
        W1, b1, W2, b2 = self.params
        return torch.addmm(b2, self.act(torch.addmm(b1, X, W1)), W2)

    def _step(self):
        with torch.no_grad():  # the update itself must not be recorded by autograd
            self.opt.step([p.grad for p in self.params])
        for p in self.params:
            p.grad = None  # clear explicitly: backward() accumulates

    def train_epoch(self, data, order=None) -> None:
        X, target, _ = data
        self.opt.lr = self.lr_used = scheduled_lr(self.config, self.epochs_done)
        self.epochs_done += 1
        if order is None:
            tc.loss_fn(self._logits(X), target, self.head).backward()
            self._step()
            return
        order_t = torch.from_numpy(order).to(self.device)
        for idx in batches(len(X), order_t, self.batch_size, None):
            tc.loss_fn(self._logits(X[idx]), target[idx], self.head).backward()
            self._step()

    def synchronize(self) -> None:
        tc.synchronize(self.device)

    def evaluate(self, data):
        return tc.evaluate(self._logits, data, self.head)

    def predict_proba(self, data):
        return tc.predict_proba(self._logits, data, self.head)

    def get_layers(self):
        a = [p.detach().cpu().numpy().copy() for p in self.params]
        return [(a[0], a[1]), (a[2], a[3])]

    def get_params(self):
        return self.get_layers()[-1]

    def learning_rate(self) -> float:
        return self.lr_used
