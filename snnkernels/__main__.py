"""``python -m snnkernels``: what will run on this machine (snnkernels.diagnostics.report)."""

from __future__ import annotations

import argparse
import ast
import importlib
import sys

import torch

from .diagnostics import report

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
EXAMPLES = """examples:
  python -m snnkernels
  python -m snnkernels --model snnkernels.models:DTA_SNN_18
  python -m snnkernels --model snnkernels.models:TCJA_DVS128 --device cuda --dtype bfloat16
  python -m snnkernels --model snnkernels.models:DTA_SNN_18 --arg backend='"torch"' --arg num_classes=100
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m snnkernels",
        description=(
            "Print what snnkernels will run here: the versions of snnkernels, Python, torch, Triton, CUDA and "
            "the compilers; which backends (torch, triton, native, cupy) can run on each device of this "
            "machine and, for each one that cannot, why; what backend='auto' picks; and, with --model, the "
            "backend each snnkernels layer of that network resolves to (neurons and attention alike, "
            "resolved as their ops do, without running the network)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        metavar="MODULE:CALLABLE",
        help="a callable that returns an nn.Module, e.g. snnkernels.models:DTA_SNN_18",
    )
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keyword argument for the callable, VALUE as a Python literal (repeatable)",
    )
    parser.add_argument("--device", default="cpu", help="move the model to this device first (default: cpu)")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float32",
        help="move the model to this dtype first (default: float32)",
    )
    return parser


def _keyword(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise ValueError(f"--arg takes NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"--arg {name}: {value!r} is not a Python literal (quote strings: '\"torch\"')") from exc


def _build_model(target: str, args: list[str]) -> torch.nn.Module:
    module_name, sep, attr = target.partition(":")
    if not sep or not attr:
        raise ValueError(f"--model takes MODULE:CALLABLE, got {target!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    model = factory(**dict(_keyword(a) for a in args))
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{target} returned {type(model).__name__}, not an nn.Module")
    return model


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    model = None
    if args.model is not None:
        try:
            model = _build_model(args.model, args.arg).to(device=args.device, dtype=DTYPES[args.dtype])
        except (ValueError, ImportError, AttributeError, TypeError, RuntimeError) as exc:
            print(f"python -m snnkernels: cannot build --model {args.model}: {exc}", file=sys.stderr)
            return 2
    report(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
