"""scripts/spikingjelly_suite.py, the runner of SpikingJelly's own tests against our classes, on two test files of
ours written the way SpikingJelly's are (SpikingJelly's own files are not in its PyPI package, so CI cannot run
them; the committed results file in bench/results/ holds that run): the swap reaches code that names
``neuron.LIFNode``, a test counts only when it builds one of our classes, a failure where SpikingJelly passes is
reported, and a failure in an op-counter file is classed as a deliberate difference."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly 2.x not installed")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "spikingjelly_suite.py"

NEURON_TESTS = """
import torch
from spikingjelly.activation_based import functional, neuron


def test_rest_value_after_reset():
    node = neuron.LIFNode(step_mode="m")
    node(torch.randn(3, 2, 4))
    functional.reset_net(torch.nn.Sequential(node))
    assert node.v == 0.0


def test_only_spikingjelly_keeps_the_input_dtype():
    node = neuron.IFNode(step_mode="m")
    node(torch.randn(3, 2).half())
    assert node.v.dtype == torch.float16


def test_builds_nothing_of_ours():
    assert torch.ones(2).sum() == 2
"""

OP_COUNTER_TESTS = """
from spikingjelly.activation_based import neuron


def test_is_a_base_node():
    assert isinstance(neuron.IFNode(), neuron.BaseNode)
"""


def _load_script():
    spec = importlib.util.spec_from_file_location("spikingjelly_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_suite_runner_counts_reports_and_classes_failures(tmp_path):
    tests = tmp_path / "activation_based"
    tests.mkdir()
    (tests / "test_neurons.py").write_text(textwrap.dedent(NEURON_TESTS))
    (tests / "test_op_counter_toy.py").write_text(textwrap.dedent(OP_COUNTER_TESTS))
    out = tmp_path / "results.json"
    suite = _load_script()
    code = suite.main(
        [
            "--tests",
            str(tests),
            "--files",
            "test_neurons.py",
            "test_op_counter_toy.py",
            "--backends",
            "torch",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    row = result["summary"]["torch"]
    assert row["tests_building_our_classes"] == 3 and row["passed"] == 1 and row["passed_on_spikingjelly"] == 3
    failing = "tests/test_neurons.py::test_only_spikingjelly_keeps_the_input_dtype"
    assert list(row["fail_where_spikingjelly_passes"]) == [failing]
    assert list(row["deliberate_differences"]) == ["tests/test_op_counter_toy.py::test_is_a_base_node"]
    assert result["outcomes"]["torch"]["tests/test_neurons.py::test_builds_nothing_of_ours"]["built"] == {}
    assert code == 1  # a failure where SpikingJelly passes that is not a deliberate difference
