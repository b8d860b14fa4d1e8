"""`logreg train`: flags generated from TrainConfig's fields."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import math
import sys
import textwrap

from logreg.cli.common import EXIT_DIVERGED, json_safe, torch_threads
from logreg.config import TrainConfig
from logreg.errors import LogregError

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
_METAVARS = {
    "dataset": "NAME",
    "data": "FILE",
    "test_data": "FILE",
    "n_features": "N",
    "target": "COL",
    "betas": ("BETA1", "BETA2"),
    "torch_threads": "N",
}
_FIELD_TYPES = {"torch_threads": {"type": torch_threads}}  # a whole number or "auto"
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


def _shown_default(name: str, value) -> str:
    """A default as the user types it: on/off for switches, 'auto' threads, '0.9 0.999' betas."""
    if name == "torch_threads" and value == 0:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


def add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (--weight-decay for weight_decay); the docstring is the help.

    Flags left out keep the field's default (argparse.SUPPRESS), so the config has one source.
    """
    docs = field_docs()
    group = p.add_mutually_exclusive_group()
    for f in dataclasses.fields(TrainConfig):
        kwargs = dict(_FIELD_TYPES.get(f.name) or _TYPES[str(f.type)])
        default = "" if f.default is None else f" (default: {_shown_default(f.name, f.default)})"
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
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="write a PNG: the fitted P(y=1 | x) curve over the data (one feature) or the decision "
        "boundary (two features, two classes)",
    )
    p.add_argument("--quiet", action="store_true", help="no line per evaluation point while training")
    p.add_argument(
        "--no-optimum",
        action="store_true",
        help="no exact optimum F*: no gap (suboptimality) in the lines and the JSON history (F* is "
        "solved before training only where it takes milliseconds, as in sweeps)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (no progress lines)")
    p.set_defaults(func=cmd_train)


def _step(config: TrainConfig) -> str:
    """'lr=0.05', and the weight decay when there is one (sparse rows have one by default)."""
    return f"lr={config.lr}" + (f", weight_decay={config.weight_decay:g}" if config.weight_decay else "")


def _print_result(result, config: TrainConfig, header: bool = True) -> None:
    m, t = result.metrics, result.timings
    model = "" if config.model == "logistic" else f"{config.model} "
    if header:
        print(
            f"{result.split.name}: {model}{config.impl} + {config.optimizer} ({_step(config)}) on "
            f"{result.device}, {t['epochs_run']} epochs, {len(result.split.y_train)} training rows"
        )
    else:
        print(f"after {t['epochs_run']} epochs:")
    for part in ("train", "val", "test"):
        if part + "_r2" in m:  # model linear: the loss is the MSE
            mse, rmse, r2 = (m[f"{part}_{k}"] for k in ("mse", "rmse", "r2"))
            print(f"  {part:5s} mse {mse:.4f}  rmse {rmse:.4f}  r2 {r2:.4f}")
            continue
        auc = f"  roc_auc {m[part + '_roc_auc']:.4f}" if part + "_roc_auc" in m else ""
        print(f"  {part:5s} loss {m[part + '_loss']:.4f}  accuracy {m[part + '_accuracy']:.4f}{auc}")
    threads = f", {t['torch_threads']} torch thread(s)" if "torch_threads" in t else ""
    print(
        f"  fit {t['fit_seconds']:.4f} s, median epoch {t['epoch_seconds_median'] * 1e6:.1f} us, "
        f"{t['samples_per_second']:.3g} samples/s{threads}"
    )
    if "compile_seconds" in t:
        print(f"  torch.compile: {t['compile_seconds']:.1f} s in the first epoch (not in fit)")
    if "time_to_target_seconds" in t:
        print(f"  time to test accuracy {config.target_accuracy}: {t['time_to_target_seconds']:.4f} s")
    _print_optimum(result)
    probe = result.split.metadata.get("probe")
    if probe is not None and probe.metric in m:
        print(f"  {probe.label} = {m[probe.metric]:.4f}")


def _print_optimum(result) -> None:
    opt = result.optimum
    if opt is None:
        return
    if not opt.finite:
        print(f"  no gap to F*: {opt.message}")
        return
    gap = result.history["suboptimality"][-1]
    print(f"  F* = {opt.value:.6g} ({opt.solver}); gap at the end {gap:.2e}")


# At most about this many progress lines: every k-th evaluation point (and the last) is printed.
PROGRESS_LINES = 10
# The progress bar (stderr, a terminal only) appears once a run has taken this long.
BAR_DELAY_S = 2.0


class TrainingOutput:
    """What `logreg train` shows while training: progress lines on stdout, a bar on stderr.

    A line per evaluation point, as the tutorials print (every k-th point when there are more
    than PROGRESS_LINES, and the last); the bar only when stderr is a terminal and the run
    lasts longer than BAR_DELAY_S. `lines=False` (--quiet, --json) prints no line.
    """

    def __init__(self, config: TrainConfig, lines: bool, f_star: float | None = None):
        points = math.ceil(config.epochs / config.eval_every)
        self.every = max(1, math.ceil(points / PROGRESS_LINES))
        self.config, self.lines, self.seen, self.bar, self.f_star = config, lines, 0, None, f_star
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=config.epochs, unit="epoch", delay=BAR_DELAY_S, leave=False, file=sys.stderr
            )

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.seen += 1
        if self.bar is not None:
            self.bar.update(epoch - self.bar.n)
        if self.lines and (self.seen % self.every == 0 or epoch == self.config.epochs):
            line = progress_line(epoch, self.config.epochs, metrics, self.f_star)
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)
            else:
                print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_line(epoch: int, epochs: int, metrics: dict[str, float], f_star: float | None = None) -> str:
    """`epoch  10/100  train loss 0.3521  val loss 0.3688  val accuracy 0.9250  lr 0.05  gap 1.2e-03`:
    the gap is F(w) - F*, the training objective's distance to its exact minimum."""
    width = len(str(epochs))
    parts = [f"epoch {epoch:>{width}d}/{epochs}"]
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "train_r2", "val_r2", "lr"):
        if key in metrics:
            parts.append(
                f"{key.replace('_', ' ')} {metrics[key]:.4g}"
                if key == "lr"
                else f"{key.replace('_', ' ')} {metrics[key]:.4f}"
            )
    if f_star is not None and "train_objective" in metrics:
        parts.append(f"gap {metrics['train_objective'] - f_star:.2e}")
    return "  ".join(parts)


def _checked_inputs(args):
    """The config and its split, with every output path checked before any training is spent."""
    from logreg.data import load_split
    from logreg.model import check_model_path
    from logreg.train import check_memory

    config = config_from_args(args)
    if args.save_model:
        check_model_path(args.save_model)
    split = load_split(config)
    check_memory(config, split)
    if args.plot:
        from logreg.paths import check_output_file
        from logreg.report.plots import fit_plot_problem, png_path

        check_output_file(png_path(args.plot), "--plot", "plot.png")
        problem = fit_plot_problem(split)
        if problem:
            raise LogregError(problem)
    return config, split


def _optimum(args, config: TrainConfig, split):
    """F*, solved before training where it costs milliseconds (as sweeps solve it), else None."""
    from logreg.optimum import cheap, optimum_for

    if args.no_optimum or config.model == "mlp" or not cheap(split):
        return None
    return optimum_for(config, split)


def cmd_train(args) -> int:
    import numpy as np

    from logreg.train import train

    config, split = _checked_inputs(args)
    optimum = _optimum(args, config, split)
    if not (args.quiet or args.json):
        model = "" if config.model == "logistic" else f"{config.model} "
        print(
            f"{split.name}: {model}{config.impl} + {config.optimizer} ({_step(config)}) on "
            f"{config.resolved_device}, {config.epochs} epochs, {len(split.y_train)} training rows"
        )
    f_star = optimum.value if optimum is not None and optimum.finite else None
    output = TrainingOutput(config, lines=not (args.quiet or args.json), f_star=f_star)
    # A diverging run is reported below as one line (exit 3); NumPy's overflow
    # warnings on the way there would only add lines to stderr.
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = train(config, split=split, on_eval=output, optimum=optimum)
    finally:
        output.close()
    _write_outputs(args, config, result)
    if result.diverged:
        print(f"logreg: {result.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def _write_outputs(args, config: TrainConfig, result) -> None:
    """The model file, the plot, then the JSON or the summary lines."""
    from logreg.model import save_model

    if args.save_model and not result.diverged:
        save_model(result, args.save_model)
    plot = None
    if args.plot and not result.diverged:
        from logreg.report.plots import fit_plot

        title = (
            f"{result.split.name}: {config.impl} + {config.optimizer}, {result.timings['epochs_run']} epochs"
        )
        plot = fit_plot(result, title, args.plot)
    if args.json:
        print(json.dumps(json_safe({**result.to_dict(), "optimum": _optimum_dict(result.optimum)})))
        return
    _print_result(result, config, header=args.quiet)
    if plot is not None:
        print(f"  plot written to {plot}")


def _optimum_dict(optimum) -> dict | None:
    if optimum is None:
        return None
    return {
        "value": optimum.value,
        "solver": optimum.solver,
        "tolerance": optimum.tolerance,
        "message": optimum.message,
    }
