"""`logreg train` (flags generated from TrainConfig's fields) and `logreg datasets`."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import sys
import textwrap

from logreg.cli.common import EXIT_DIVERGED, json_safe
from logreg.config import TrainConfig

# Field type (as written in config.py) -> argparse keyword arguments.
_TYPES = {
    "str": {"type": str},
    "str | None": {"type": str},
    "int": {"type": int},
    "int | None": {"type": int},
    "float": {"type": float},
    "float | None": {"type": float},
    "bool": {"action": argparse.BooleanOptionalAction},
    "tuple[float, float]": {"type": float, "nargs": 2},
}
_METAVARS = {"dataset": "NAME", "data": "FILE", "target": "COL", "betas": ("BETA1", "BETA2")}
_ONE_OF = ("dataset", "data")  # a registry dataset or the user's file, not both


@functools.cache
def field_docs() -> dict[str, str]:
    """TrainConfig's field docstrings (the string under each field), read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(TrainConfig)))
    body = tree.body[0].body
    docs = {}
    for field, doc in zip(body, body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            docs[field.target.id] = " ".join(doc.value.value.split())
    return docs


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (--weight-decay for weight_decay); the docstring is the help.

    Flags left out keep the field's default (argparse.SUPPRESS), so the config has one source.
    """
    docs = field_docs()
    group = p.add_mutually_exclusive_group()
    for f in dataclasses.fields(TrainConfig):
        kwargs = dict(_TYPES[str(f.type)])
        default = "" if f.default is None else f" (default: {f.default})"
        help_text = docs.get(f.name, "").replace("%", "%%") + default
        target = group if f.name in _ONE_OF else p
        if f.name in _METAVARS:
            kwargs["metavar"] = _METAVARS[f.name]
        flag = "--" + f.name.replace("_", "-")
        target.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, help=help_text, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the flags given (the others keep TrainConfig's defaults)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one model and print its metrics")
    add_config_args(p)
    p.add_argument(
        "--save-model",
        metavar="PATH",
        help="write the trained model (a torch state dict; load with logreg.load_model)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("datasets", help="list the built-in datasets")
    p.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    p.set_defaults(func=cmd_datasets)


def _print_result(result, config: TrainConfig) -> None:
    m, t = result.metrics, result.timings
    model = "" if config.model == "logistic" else f"{config.model} "
    print(
        f"{result.split.name}: {model}{config.impl} + {config.optimizer} (lr={config.lr}) on "
        f"{result.device}, {t['epochs_run']} epochs, {len(result.split.y_train)} training rows"
    )
    for part in ("train", "val", "test"):
        if part + "_r2" in m:  # model linear: the loss is the MSE
            mse, rmse, r2 = (m[f"{part}_{k}"] for k in ("mse", "rmse", "r2"))
            print(f"  {part:5s} mse {mse:.4f}  rmse {rmse:.4f}  r2 {r2:.4f}")
            continue
        auc = f"  roc_auc {m[part + '_roc_auc']:.4f}" if part + "_roc_auc" in m else ""
        print(f"  {part:5s} loss {m[part + '_loss']:.4f}  accuracy {m[part + '_accuracy']:.4f}{auc}")
    print(
        f"  fit {t['fit_seconds']:.4f} s, median epoch {t['epoch_seconds_median'] * 1e6:.1f} us, "
        f"{t['samples_per_second']:.3g} samples/s"
    )
    if "time_to_target_seconds" in t:
        print(f"  time to test accuracy {config.target_accuracy}: {t['time_to_target_seconds']:.4f} s")
    probe = result.split.metadata.get("probe")
    if probe is not None and probe.metric in m:
        print(f"  {probe.label} = {m[probe.metric]:.4f}")


def cmd_train(args) -> int:
    import numpy as np

    from logreg.model import check_model_path, save_model
    from logreg.train import train

    config = config_from_args(args)
    if args.save_model:
        check_model_path(args.save_model)
    # A diverging run is reported below as one line (exit 3); NumPy's overflow
    # warnings on the way there would only add lines to stderr.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = train(config)
    if args.save_model and not result.diverged:
        save_model(result, args.save_model)
    if args.json:
        print(json.dumps(json_safe(result.to_dict())))
    else:
        _print_result(result, config)
    if result.diverged:
        print(f"logreg: {result.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def cmd_datasets(args) -> int:
    from logreg.data import describe_datasets

    rows = describe_datasets()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':15s} {'shape':28s} {'classes':>7s}  source")
    for r in rows:
        classes = "-" if r["task"] == "regression" else str(r["n_classes"])
        print(f"{r['name']:15s} {r['shape']:28s} {classes:>7s}  {r['source']}")
    print("Your own data: logreg train --data FILE.csv|FILE.parquet --target COLUMN")
    return 0
