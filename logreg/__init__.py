"""logreg: logistic regression in NumPy, torch autograd and torch.nn, tracked with MLflow."""

from logreg.config import TrainConfig
from logreg.data import Split, load_split, make_split
from logreg.errors import LogregError
from logreg.model import FittedModel, load_model, save_model
from logreg.train import Result, train

__all__ = [
    "FittedModel",
    "LogregError",
    "Result",
    "Split",
    "TrainConfig",
    "load_model",
    "load_split",
    "make_split",
    "save_model",
    "train",
]
__version__ = "0.1.0"
