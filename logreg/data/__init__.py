"""Datasets: the registry, the user's files, and one immutable Split per (dataset, seed, sizes)."""

from logreg.data.files import read_table
from logreg.data.load import load_split
from logreg.data.registry import (
    REGISTRY,
    DatasetInfo,
    Probe,
    check_dataset_name,
    check_task,
    describe_datasets,
    model_task,
    parse_dataset,
    suits,
)
from logreg.data.split import Split, encode_labels, make_split

__all__ = [
    "REGISTRY",
    "DatasetInfo",
    "Probe",
    "Split",
    "check_dataset_name",
    "check_task",
    "model_task",
    "suits",
    "describe_datasets",
    "encode_labels",
    "load_split",
    "make_split",
    "parse_dataset",
    "read_table",
]
