"""The op registry (snnkernels/ops/registry.py) against the dispatcher, and opcheck of every registered op.

Every op under ``torch.ops.snnkernels`` has an entry and every entry names a registered op; each entry's
samples pass ``torch.library.opcheck`` (schema, autograd registration, fake tensor, AOT dispatch) on the
test device, the Triton ops on the CPU under the interpreter. An op that cannot run here says why (its
entry or this install's probe): nothing is skipped without a reason.
"""

from __future__ import annotations

import pytest
import torch
from torch._library.custom_ops import OPDEFS

from snnkernels.ops import registry
from snnkernels.ops.registry import CAPABILITIES, REGISTRY, TARGETS, OpEntry

from conftest import DEVICE

DEFAULT_UTILS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


@pytest.fixture(scope="module")
def unloaded() -> dict[str, str]:
    """{module: why it did not load} of the entries' modules (a missing Triton or native build)."""
    return registry.load()


def test_every_registered_op_has_an_entry_and_every_entry_an_op(unloaded):
    assert registry.audit(unloaded=tuple(unloaded)) == []
    assert len(registry.ENTRIES) == len(REGISTRY), "two entries with one name"


def test_audit_catches_an_op_without_entry_and_an_entry_without_op():
    """A synthetic namespace with one op: the registry's entries name none of its ops, and its op has no
    entry; both are reported."""
    lib = torch.library.Library("snnkernels_registry_probe", "DEF")
    lib.define("unlisted(Tensor x) -> Tensor")
    entry = OpEntry("listed_only", "snnkernels.ops.leaky_triton", "triton", lambda dev: [])
    problems = registry.audit((entry,), namespace="snnkernels_registry_probe")
    assert problems == [
        "snnkernels_registry_probe::unlisted is registered but has no entry (OPS of its ops module)",
        "the entry listed_only names no registered op in snnkernels_registry_probe",
    ]
    # a registered op with an entry passes
    assert (
        registry.audit((OpEntry("unlisted", "", "triton", lambda dev: []),), namespace="snnkernels_registry_probe")
        == []
    )


def test_every_backend_module_lists_its_ops():
    """The registry finds entries by the one-stem rule (ops/<stem>_<backend>.py): each such module ends with
    ``OPS``, its entries, each naming the module itself (the native ones: the extension)."""
    import importlib

    modules = registry.backend_modules()
    assert "snnkernels.ops.leaky_triton" in modules and "snnkernels.ops.leaky_native" in modules
    for name in modules:
        if name in registry.UNLOADABLE:
            continue
        entries = importlib.import_module(name).OPS
        assert entries, f"{name} registers no op"
        assert all(e.module in (name, registry.NATIVE_MODULE) for e in entries), name


def test_capability_table_is_derived_from_the_entries():
    for entry in REGISTRY:
        row = CAPABILITIES[entry.name]
        assert set(row) == set(TARGETS)
        runs = {target for target, reason in row.items() if reason is None}
        assert runs == {(entry.backend, d) for d in entry.devices if (entry.backend, d) in TARGETS}, entry.name
        assert all(isinstance(reason, str) and reason for reason in row.values() if reason is not None)


def test_entries_are_well_formed():
    for entry in REGISTRY:
        assert entry.backend in ("triton", "native", "cupy"), entry.name
        assert entry.kernels if entry.backend == "triton" else not entry.kernels, entry.name
        assert set(entry.opcheck_exempt) <= set(DEFAULT_UTILS), entry.name
        assert all(entry.opcheck_exempt.values()) and all(entry.aot_exempt.values()), "an exemption says why"
        assert set(entry.aot_exempt) <= set(entry.kernels), entry.name


def _has_autograd_formula(entry: OpEntry) -> bool:
    opdef = OPDEFS.get(entry.qualname)
    if opdef is not None:  # torch.library.custom_op: it always has an Autograd kernel, a formula or not
        return opdef._backward_fn is not None
    return torch._C._dispatch_has_kernel_for_dispatch_key(entry.qualname, "Autograd")


def test_autograd_flags_match_the_dispatcher(unloaded):
    wrong = [e.name for e in REGISTRY if e.module not in unloaded and _has_autograd_formula(e) != e.autograd]
    assert not wrong, f"entries whose autograd flag is wrong: {wrong}"


def _triton_marked(entry: OpEntry):
    return pytest.param(entry, id=entry.name, marks=[pytest.mark.triton] if entry.backend == "triton" else [])


@pytest.mark.parametrize("entry", [_triton_marked(e) for e in REGISTRY])
def test_opcheck(entry: OpEntry, unloaded):
    if entry.module in unloaded:
        pytest.skip(f"{entry.module} did not load: {unloaded[entry.module]}")
    if DEVICE not in entry.devices:
        # documented by the table, and true of the dispatcher: no kernel for this device at all
        assert registry.capability(entry.name, entry.backend, DEVICE) is not None
        assert not torch._C._dispatch_has_kernel_for_dispatch_key(entry.qualname, DEVICE.upper())
        return
    reason = registry.capability(entry.name, entry.backend, DEVICE)
    if reason is not None:
        pytest.skip(reason)
    utils = [u for u in DEFAULT_UTILS if u not in entry.opcheck_exempt]
    samples = entry.samples(DEVICE)
    assert samples, f"{entry.name}: no samples"
    for args in samples:
        torch.library.opcheck(entry.op(), args, test_utils=utils)
