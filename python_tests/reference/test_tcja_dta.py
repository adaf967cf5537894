"""TCJA and DTA modules and references against independent re-implementations of the official modules.

The ``OfficialStyle*`` classes (official_tcja_dta.py) are written from docs/tcja_dta.md, in the official
layouts and with the official parameter names. Every comparison loads the
official-style module's state dict into ours (strict), then checks the output and every gradient (input,
spikes, each parameter) in float64 on shapes with T, B, C, H, W all different.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from snnkernels.nn.attention import CLA, DTA, TCJA, TLA, TNA, TXA
from snnkernels.reference.dta import tna_reference, txa_reference
from snnkernels.reference.tcja import tcja_reference

from attention_checks import check_backend_and_layout_arguments
from official_tcja_dta import (
    DTA_C,
    F64,
    OfficialStyleCLA,
    OfficialStyleDTA,
    OfficialStyleTCJA,
    OfficialStyleTCJATET,
    OfficialStyleTLA,
    OfficialStyleTNA,
    OfficialStyleTXA,
    loaded,
    randomized,
    tb_to_bt,
)

# the official-style modules use nn.Conv1d(padding='same'), which warns for even kernels
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")

# float64, and both sides compute the same sums in a different order: only rounding may differ
TOL = dict(rtol=1e-9, atol=1e-11)

T_, B_, C_, H_, W_ = 5, 2, 7, 4, 3  # TCJA shapes, all different
DTA_B, DTA_H, DTA_W = 2, 5, 3


def run(module, inputs, grad_out):
    """Output and the gradients of every input and parameter (by name) of one forward / backward."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = module(*leaves)
    out.backward(grad_out)
    grads = {f"input{i}": leaf.grad for i, leaf in enumerate(leaves)}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return out.detach(), grads


def assert_same_run(ours, official, inputs_ours, inputs_official, to_official=lambda t: t, renamed=None):
    """Our module (inputs in its layout) against the official-style one; ``to_official`` maps our layout,
    ``renamed`` maps official parameter names to ours where they differ."""
    grad_out = torch.randn_like(inputs_official[0])  # every module returns the shape of its first input
    grad_ours = to_official(grad_out)  # the layout map is its own inverse (a transpose of dims 0 and 1)
    official.zero_grad()
    out_o, grads_o = run(official, inputs_official, grad_out)
    grads_o = {(renamed or {}).get(k, k): v for k, v in grads_o.items()}
    ours.zero_grad()
    out_u, grads_u = run(ours, inputs_ours, grad_ours)
    torch.testing.assert_close(to_official(out_u), out_o, **TOL)
    assert grads_u.keys() == grads_o.keys()
    for name in grads_o:
        assert grads_o[name] is not None, name
        got = grads_u[name] if not name.startswith("input") else to_official(grads_u[name])
        torch.testing.assert_close(got, grads_o[name], **TOL, msg=lambda m, n=name: f"gradient of {n}: {m}")


# ---------------------------------------------------------------------------------------------------
# TCJA


@pytest.mark.parametrize("kernel_size_t,kernel_size_c", list(itertools.product([1, 2, 3, 4], repeat=2)))
def test_tcja_matches_official_style(kernel_size_t, kernel_size_c):
    official = randomized(OfficialStyleTCJA(kernel_size_t, kernel_size_c, T_, C_))
    ours = loaded(TCJA(kernel_size_t, kernel_size_c, T_, C_), official)
    x = 2 * torch.rand(T_, B_, C_, H_, W_, **F64)
    assert_same_run(ours, official, [x], [x])


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4])
@pytest.mark.parametrize("ours_cls,official_cls", [(TLA, OfficialStyleTLA), (CLA, OfficialStyleCLA)])
def test_tcja_ablations_match_official_style(ours_cls, official_cls, kernel_size):
    # the unused kernel size differs from the used one, so a mix-up of the two changes a weight shape
    args = (kernel_size, 5 - kernel_size) if ours_cls is CLA else (5 - kernel_size, kernel_size)
    official = randomized(official_cls(*args, T_, C_))
    ours = loaded(ours_cls(*args, T_, C_), official)
    x = 2 * torch.rand(T_, B_, C_, H_, W_, **F64)
    assert_same_run(ours, official, [x], [x])


@pytest.mark.parametrize("kernel_size_t,kernel_size_c", [(2, 2), (4, 3)])
def test_tcja_tet_checkpoint_loads_into_bt_layout(kernel_size_t, kernel_size_c):
    official = randomized(OfficialStyleTCJATET(kernel_size_t, kernel_size_c, T_, C_))
    assert set(official.state_dict()) == {"conv.0.weight", "conv_c.weight"}
    ours = loaded(TCJA(kernel_size_t, kernel_size_c, T_, C_, layout="BT"), official)
    x = 2 * torch.rand(B_, T_, C_, H_, W_, **F64)
    assert_same_run(ours, official, [x], [x], renamed={"conv.0.weight": "conv.weight"})


def spec_tcja_loop(x, w_tla, w_cla, mode):
    """TCJA written as the explicit sums, with left = floor((K - 1) / 2) and zeros outside the axis."""
    T, B, C = x.shape[:3]
    z = x.mean(dim=(3, 4))
    tla = torch.zeros(T, B, C, **F64)
    cla = torch.zeros(T, B, C, **F64)
    k_t, k_c = w_tla.shape[-1], w_cla.shape[-1]
    for t, c, k in itertools.product(range(T), range(C), range(k_t)):
        src = t + k - (k_t - 1) // 2
        if 0 <= src < T:
            tla[t, :, c] += z[src] @ w_tla[c, :, k]  # sum over n of Wt[c, n, k] Z[src, b, n]
    for t, c, k in itertools.product(range(T), range(C), range(k_c)):
        src = c + k - (k_c - 1) // 2
        if 0 <= src < C:
            cla[t, :, c] += z[:, :, src].t() @ w_cla[t, :, k]  # sum over m of Wc[t, m, k] Z[m, b, src]
    logit = {"both": tla * cla, "tla": tla, "cla": cla}[mode]
    return x * torch.sigmoid(logit)[..., None, None]


@pytest.mark.parametrize("mode", ["both", "tla", "cla"])
@pytest.mark.parametrize("k_t,k_c", [(1, 1), (2, 4), (4, 2), (3, 3)])
def test_tcja_reference_is_the_spec_sum(mode, k_t, k_c):
    x = torch.randn(T_, B_, C_, H_, W_, **F64)
    w_tla = torch.randn(C_, C_, k_t, **F64)
    w_cla = torch.randn(T_, T_, k_c, **F64)
    got = tcja_reference(x, w_tla, w_cla, k_t, k_c, mode=mode)
    torch.testing.assert_close(got, spec_tcja_loop(x, w_tla, w_cla, mode), **TOL)


def test_tcja_reference_checks_its_weights():
    x = torch.randn(T_, B_, C_, H_, W_, **F64)
    w_tla, w_cla = torch.randn(C_, C_, 2, **F64), torch.randn(T_, T_, 3, **F64)
    with pytest.raises(ValueError, match=r"weight_t .* must have shape \[7, 7, 3\]"):
        tcja_reference(x, w_tla, w_cla, kernel_size_t=3)
    with pytest.raises(ValueError, match=r"weight_c .* must have shape \[5, 5, 3\]"):
        tcja_reference(x, w_tla, w_cla[:, :2])
    with pytest.raises(ValueError, match="weight_c .* is required with mode='both'"):
        tcja_reference(x, w_tla, None)
    tcja_reference(x, w_tla, None, mode="tla")
    with pytest.raises(ValueError, match="mode must be one of"):
        tcja_reference(x, w_tla, w_cla, mode="ccf")


# ---------------------------------------------------------------------------------------------------
# DTA


def dta_input(T, layout="BT"):
    shape = (DTA_B, T, DTA_C, DTA_H, DTA_W) if layout == "BT" else (T, DTA_B, DTA_C, DTA_H, DTA_W)
    x = torch.randn(shape, **F64)
    return x, (x > 0.3).to(x.dtype)


@pytest.mark.parametrize("T", [4, 6])
def test_txa_matches_official_style(T):
    official = randomized(OfficialStyleTXA(T))
    ours = loaded(TXA(T), official)
    x, _ = dta_input(T)
    assert_same_run(ours, official, [tb_to_bt(x)], [x], to_official=tb_to_bt)


@pytest.mark.parametrize("kernel_size", [7, 21])
@pytest.mark.parametrize("T", [4, 6])
def test_tna_matches_official_style(T, kernel_size):
    D = T * DTA_C
    official = randomized(OfficialStyleTNA(D, kernel_size))
    ours = loaded(TNA(D, kernel_size), official)
    x, _ = dta_input(T)
    # the official fused input [B, T*C, H, W] as such ...
    assert_same_run(ours, official, [x.flatten(1, 2)], [x.flatten(1, 2)])
    # ... and the library layout [T, B, C, H, W], fused t-major inside
    want = official(x.flatten(1, 2)).view_as(x)
    torch.testing.assert_close(tb_to_bt(ours(tb_to_bt(x))), want, **TOL)


@pytest.mark.parametrize("T", [4, 6])
def test_dta_matches_official_style(T):
    official = randomized(OfficialStyleDTA(T, DTA_C))
    ours = loaded(DTA(T, DTA_C), official)
    x, s = dta_input(T)
    assert_same_run(ours, official, [tb_to_bt(x), tb_to_bt(s)], [x, s], to_official=tb_to_bt)


def test_dta_reference_pieces_compose():
    T = 4
    ours = randomized(DTA(T, DTA_C))
    x, s = dta_input(T, layout="TB")
    xa = txa_reference(x, ours.T_XA.conv_t.weight, ours.T_XA.conv_c.weight, ours.T_XA.scale_t, ours.T_XA.scale_c)
    na = tna_reference(x, ours.T_NA.params())
    torch.testing.assert_close(ours(x, s), torch.sigmoid(na * xa) * s, rtol=0, atol=0)


def test_dta_parameter_count():
    # T-NA 212,736 (three dense 256 x 256 1x1 convs, depth-wise 5x5 and 1x1, MLP 256-16-256)
    # + T-XA 24,626 (conv_t 4*4*3, conv_c 64*64*6, two scales)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    dta = DTA(4, 64)
    assert count(dta) == 237_362
    assert count(dta.T_NA) == 212_736 and count(dta.T_XA) == 24_626
    assert count(DTA(6, 64)) == count(OfficialStyleDTA(6, 64))


# ---------------------------------------------------------------------------------------------------
# shared module behaviour: official names, init, layouts, errors

TCJA_KEYS = {"conv.weight": [T_, T_, 4], "conv_c.weight": [C_, C_, 3]}
TNA_KEYS = {
    "encoding.0.weight": [256, 256, 1, 1],
    "encoding.0.bias": [256],
    "tca.LTCA.0.weight": [256, 1, 5, 5],
    "tca.LTCA.0.bias": [256],
    "tca.LTCA.1.weight": [256, 1, 1, 1],
    "tca.LTCA.1.bias": [256],
    "tca.LTCA.2.weight": [256, 256, 1, 1],
    "tca.LTCA.2.bias": [256],
    "tca.MLP_block.0.weight": [16, 256],
    "tca.MLP_block.2.weight": [256, 16],
    "decoding.weight": [256, 256, 1, 1],
    "decoding.bias": [256],
}
TXA_KEYS = {"conv_t.weight": [4, 4, 3], "conv_c.weight": [64, 64, 6], "scale_t": [], "scale_c": []}
DTA_KEYS = {**{f"T_NA.{k}": v for k, v in TNA_KEYS.items()}, **{f"T_XA.{k}": v for k, v in TXA_KEYS.items()}}

# (ours, official-style, expected state-dict keys and shapes, input shape in the TB layout)
MODULES = {
    "TCJA": (lambda **kw: TCJA(4, 3, T_, C_, **kw), lambda: OfficialStyleTCJA(4, 3, T_, C_), TCJA_KEYS),
    "TLA": (
        lambda **kw: TLA(4, 3, T_, C_, **kw),
        lambda: OfficialStyleTLA(4, 3, T_, C_),
        {"conv_c.weight": [C_, C_, 3]},
    ),
    "CLA": (lambda **kw: CLA(4, 3, T_, C_, **kw), lambda: OfficialStyleCLA(4, 3, T_, C_), {"conv.weight": [T_, T_, 4]}),
    "TXA": (lambda **kw: TXA(4, **kw), lambda: OfficialStyleTXA(4), TXA_KEYS),
    "TNA": (lambda **kw: TNA(256, **kw), lambda: OfficialStyleTNA(256, 7), TNA_KEYS),
    "DTA": (lambda **kw: DTA(4, 64, **kw), lambda: OfficialStyleDTA(4, 64), DTA_KEYS),
}
TB_SHAPES = {
    "TCJA": (T_, B_, C_, H_, W_),
    "TLA": (T_, B_, C_, H_, W_),
    "CLA": (T_, B_, C_, H_, W_),
    "TXA": (4, DTA_B, 64, DTA_H, DTA_W),
    "TNA": (4, DTA_B, 64, DTA_H, DTA_W),
    "DTA": (4, DTA_B, 64, DTA_H, DTA_W),
}


def call(name, module, x):
    return module(x, (x > 0.3).to(x.dtype)) if name == "DTA" else module(x)


@pytest.mark.parametrize("name", list(MODULES))
def test_state_dict_has_the_official_keys_and_shapes(name):
    make, make_official, keys = MODULES[name]
    got = {k: list(v.shape) for k, v in make().state_dict().items()}
    assert got == keys
    assert got == {k: list(v.shape) for k, v in make_official().state_dict().items()}


@pytest.mark.parametrize("name", list(MODULES))
def test_same_seed_gives_the_official_initial_weights(name):
    make, make_official, _ = MODULES[name]
    torch.manual_seed(1234)
    official = make_official()
    torch.manual_seed(1234)
    ours = make()
    for key, value in official.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(MODULES))
def test_bt_layout_equals_tb_layout(name):
    make = MODULES[name][0]
    tb = randomized(make())
    bt = make(layout="BT").to(**F64)
    bt.load_state_dict(tb.state_dict())
    x = torch.randn(TB_SHAPES[name], **F64)
    y_tb = call(name, tb, x)
    y_bt = call(name, bt, x.transpose(0, 1).contiguous())
    assert y_bt.shape == x.transpose(0, 1).shape
    torch.testing.assert_close(y_bt.transpose(0, 1), y_tb, rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["TB", "BT"])
@pytest.mark.parametrize("name", list(MODULES))
def test_mismatched_t_or_c_raises(name, layout):
    module = MODULES[name][0](layout=layout).to(**F64)
    T, B, C, H, W = TB_SHAPES[name]
    as_layout = (lambda s: s) if layout == "TB" else (lambda s: (s[1], s[0]) + s[2:])
    product = "T \\* C" if name == "TNA" else None
    bad_t = as_layout((T + 1, B, C, H, W))
    bad_c = as_layout((T, B, C + 1, H, W))
    with pytest.raises(ValueError, match=product or f"built for T = {T} time steps but the .* has {T + 1}"):
        call(name, module, torch.randn(bad_t, **F64))
    if name != "TNA":  # T-NA only sees T * C
        with pytest.raises(ValueError, match=f"built for C = {C} channels but the .* has {C + 1} at dim 2"):
            call(name, module, torch.randn(bad_c, **F64))
    with pytest.raises(ValueError, match="must have shape"):
        call(name, module, torch.randn(T, B, C, H, **F64) if name != "TNA" else torch.randn(T, C, H, **F64))


def test_swapped_layout_gets_a_hint():
    module = TCJA(2, 1, T_, C_)
    with pytest.raises(ValueError, match=r"is the input in the other layout \(layout='BT'\)"):
        module(torch.randn(B_, T_, C_, H_, W_))


def test_tna_fused_input_checks_in_planes():
    with pytest.raises(ValueError, match="built for in_planes = 256 .* has 255 at dim 1"):
        TNA(256)(torch.randn(2, 255, 3, 3))


def test_dta_spikes_must_match_x():
    module = DTA(4, 64)
    x = torch.randn(4, 2, 64, 3, 3)
    with pytest.raises(ValueError, match="spikes must have the shape of x_seq"):
        module(x, x[:, :1])


@pytest.mark.parametrize("name", list(MODULES))
def test_backend_and_layout_arguments(name):
    # Triton sweeps exist for all (T-NA: around its torch convolutions); none has native / CuPy kernels
    check_backend_and_layout_arguments(MODULES[name][0], name, ("torch", "auto", "triton"))
