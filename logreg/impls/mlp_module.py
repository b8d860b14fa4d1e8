"""The mlp model as an nn.Sequential (Linear, activation, Linear) trained with torch.optim."""

from __future__ import annotations

import torch
from torch import nn

from logreg.impls import torch_common as tc
from logreg.impls.base import LEAKY_RELU_SLOPE, batches, head_of

ACTIVATION_MODULES = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(LEAKY_RELU_SLOPE),
    "tanh": nn.Tanh,
    "none": nn.Identity,
}


def mlp_network(n_features: int, hidden: int, n_outputs: int, activation: str) -> nn.Sequential:
    """Logits of the mlp model: Linear(d, h), activation, Linear(h, k) (state dict keys 0.*, 2.*)."""
    return nn.Sequential(
        nn.Linear(n_features, hidden), ACTIVATION_MODULES[activation](), nn.Linear(hidden, n_outputs)
    )


class Model:
    def __init__(self, config, layers, device="cpu"):
        self.device = torch.device(device)
        self.dtype = tc.DTYPES[config.dtype]
        (W1, b1), (W2, b2) = layers
        self.net = mlp_network(W1.shape[0], W1.shape[1], W2.shape[1], config.activation)
        self.net.to(device=self.device, dtype=self.dtype)
        first, last = self.net[0], self.net[2]
        with torch.no_grad():  # the same initial weights as the other implementations
            for lin, (W, b) in ((first, (W1, b1)), (last, (W2, b2))):
                lin.weight.copy_(torch.as_tensor(W.T))
                lin.bias.copy_(torch.as_tensor(b))
        self.head = head_of(config, W2.shape[1])
        self.batch_size = config.batch_size
        # Weight decay on the weights only, as the hand-written optimizers do.
        groups = [
            {"params": [first.weight, last.weight], "weight_decay": config.weight_decay},
            {"params": [first.bias, last.bias], "weight_decay": 0.0},
        ]
        if config.optimizer == "adam":
            self.opt = torch.optim.Adam(groups, lr=config.lr, betas=config.betas, eps=config.eps)
        else:
            self.opt = torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
            )
        self.scheduler = tc.make_scheduler(config, self.opt)
        self.lr_used = config.lr

    def put(self, X, y):
        return tc.put(X, y, self.head, self.dtype, self.device)

    def train_epoch(self, data, order=None) -> None:
        X, target, _ = data
        self.lr_used = self.opt.param_groups[0]["lr"]
        if order is None:
            rows = [slice(None)]
        else:
            rows = batches(len(X), torch.from_numpy(order).to(self.device), self.batch_size, None)
        for idx in rows:
            self.opt.zero_grad(set_to_none=True)
            tc.loss_fn(self.net(X[idx]), target[idx], self.head).backward()
            self.opt.step()
        if self.scheduler is not None:  # torch.optim.lr_scheduler: once per epoch
            self.scheduler.step()

    def synchronize(self) -> None:
        tc.synchronize(self.device)

    def evaluate(self, data):
        return tc.evaluate(self.net, data, self.head)

    def predict_proba(self, data):
        return tc.predict_proba(self.net, data, self.head)

    def get_layers(self):
        return [
            (lin.weight.detach().cpu().numpy().T.copy(), lin.bias.detach().cpu().numpy().copy())
            for lin in (self.net[0], self.net[2])
        ]

    def get_params(self):
        return self.get_layers()[-1]

    def learning_rate(self) -> float:
        return self.lr_used
