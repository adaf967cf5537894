"""STAA-LIF (RECONSTRUCTED, docs/staa.md): the reference against an independent per-step loop, and the modules.

There is no official code to compare with, so the ground truth here is ``loop_staa`` below: the
inferred equations (docs/staa.md "What is computed (inferred design)") and each option's equation written out
per (t, b) with hand-made softmax,
LayerNorm, sigmoid and rectangle-surrogate spike, sharing no code with snnkernels. Every comparison runs
in float64 on shapes with T, B, C, H, W all different and checks the spikes, the final state and the
gradient of every input and parameter. The other tests pin the properties the prose does fix: the step
attention starts as plain addition, TSRD falls back to plain addition for the dropped steps only, eval
never drops, the GC softmax runs over the pixels.
"""

from __future__ import annotations

import copy
import functools
import pickle

import pytest
import torch

from snnkernels.nn.staa import GlobalContextBlock, PositionEncoding, STAALIFNode
from snnkernels.reference.leaky import multistep_leaky_reference
from snnkernels.reference.staa import (
    GCParams,
    SAParams,
    STAAParams,
    draw_drop_mask,
    global_context_attention_reference,
    global_context_reference,
    global_context_vector_reference,
    staa_lif_reference,
)
from snnkernels.surrogate import Rectangle

from attention_checks import check_backend_and_layout_arguments

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
F64 = dict(dtype=torch.float64, device=DEVICE)
TOL = dict(rtol=1e-9, atol=1e-11)  # float64, same math summed in another order

T_, B_, C_, H_, W_ = 5, 3, 12, 4, 6  # all different
GC_HIDDEN, SA_HIDDEN = 3, 2  # C // 4 and C // 6


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: intra-op threads only add wake-up latency (measured 40x slower backward on a busy 2-core
    machine), so this file runs single-threaded and restores the setting afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


STEP_MASK = torch.tensor([0, 1, 0, 1, 1], dtype=torch.bool)
SAMPLE_MASK = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)


# ---------------------------------------------------------------------------------------------------
# The independent loop


class RectSpike(torch.autograd.Function):
    """Heaviside(x) (1 at x >= 0) with the rectangle surrogate of width 1: d/dx = 1[|x| < 1/2]."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() < 0.5).to(x.dtype)


def sig(z):
    return 1.0 / (1.0 + torch.exp(-z))


def loop_staa(
    x,
    p,
    *,
    gc_fusion="add",
    gc_layer_norm=True,
    sa_gate="sigmoid",
    coefficient_map="raw",
    tsrd_scope="step_attention",
    drop_mask=None,
    alpha=2.0,
    detach_reset=False,
    v_reset=0.0,
):
    """Spikes [T, B, C, H, W] and H_T, one (t, b) at a time. ``p``: dict of the parameters (None = absent)."""
    T, B, C, H, W = x.shape
    M, N = p["M"], p["N"]
    if coefficient_map == "tanh":
        M, N = torch.tanh(M), torch.tanh(N)

    def full(c):  # a scalar, [C] or [C, H, W] coefficient as [C, H, W]
        if c.dim() == 3:
            return c
        if c.numel() == C and C > 1:
            return c.reshape(C, 1, 1).expand(C, H, W)
        return c.reshape(1, 1, 1).expand(C, H, W)

    a_coef, b_coef = full(M), full(N)
    h = [torch.zeros(C, H, W, dtype=x.dtype, device=x.device) for _ in range(B)]
    spikes = []
    for t in range(T):
        s_t = []
        for b in range(B):
            xt = x[t, b]
            xp = xt + p["P"][t] if p["P"] is not None else xt  # P[t] is [C, H, W], [C, 1, 1] or [1, 1, 1]
            flat = xp.reshape(C, H * W)
            if p["wk"] is not None:
                logits = p["wk"] @ flat + (p["bk"][0] if p["bk"] is not None else 0.0)  # [HW]
                e = torch.exp(logits - logits.max())
                att = e / e.sum()
                ctx = flat @ att  # [C]
                hid = p["W1"] @ ctx + (p["b1"] if p["b1"] is not None else 0.0)
                if gc_layer_norm:
                    mu = hid.mean()
                    var = ((hid - mu) ** 2).mean()
                    hid = (hid - mu) / torch.sqrt(var + 1e-5) * p["ln_w"] + p["ln_b"]
                v = p["W2"] @ torch.clamp(hid, min=0) + (p["b2"] if p["b2"] is not None else 0.0)
                xg = xp + v[:, None, None] if gc_fusion == "add" else xp * sig(v)[:, None, None]
            else:
                xg = xp
            if drop_mask is None:
                dropped = False
            else:
                dropped = bool(drop_mask[t] if drop_mask.dim() == 1 else drop_mask[t, b])
            y = xt if (dropped and tsrd_scope == "all") else xg
            A = a_coef * h[b]
            Bv = b_coef * y
            if dropped or p["Ws1"] is None:
                U = A + Bv
            else:
                pooled = (A + Bv).reshape(C, H * W).mean(dim=1)  # [C]
                z = p["Ws2"] @ torch.clamp(p["Ws1"] @ pooled, min=0)  # [2C]
                za, zb = z[:C], z[C:]
                if sa_gate == "sigmoid":
                    ga, gb = alpha * sig(za), alpha * sig(zb)
                elif sa_gate == "softmax":
                    m = torch.maximum(za, zb)
                    ea, eb = torch.exp(za - m), torch.exp(zb - m)
                    ga, gb = alpha * ea / (ea + eb), alpha * eb / (ea + eb)
                else:
                    ga, gb = sig(alpha * za), sig(alpha * zb)
                U = ga[:, None, None] * A + gb[:, None, None] * Bv
            S = RectSpike.apply(U - 1.0)
            Sr = S.detach() if detach_reset else S
            h[b] = U * (1 - Sr) + v_reset * Sr
            s_t.append(S)
        spikes.append(torch.stack(s_t))
    return torch.stack(spikes), torch.stack(h)


# ---------------------------------------------------------------------------------------------------
# helpers


PE_SIZES = {"TCHW": (T_, C_, H_, W_), "TC": (T_, C_, 1, 1), "T": (T_, 1, 1, 1)}
COEF_SIZES = {"C": (C_,), "CHW": (C_, H_, W_), "scalar": ()}


def make_params(pe_shape="TCHW", coefficient_shape="C", gc_bias=True, ws2_zero=False):
    """Random float64 leaves, every one off its init, so each takes part in the output."""

    def r(*shape, scale=0.5, shift=0.0):
        return (shift + scale * torch.randn(*shape, **F64)).requires_grad_(True)

    coef = COEF_SIZES[coefficient_shape]
    C = C_
    return dict(
        P=r(*PE_SIZES[pe_shape], scale=0.3),
        wk=r(C),
        bk=r(1, scale=1.0) if gc_bias else None,
        W1=r(GC_HIDDEN, C),
        b1=r(GC_HIDDEN, scale=0.3) if gc_bias else None,
        ln_w=r(GC_HIDDEN, scale=0.3, shift=1.0),
        ln_b=r(GC_HIDDEN, scale=0.3),
        W2=r(C, GC_HIDDEN),
        b2=r(C, scale=0.3) if gc_bias else None,
        Ws1=r(SA_HIDDEN, C),
        Ws2=torch.zeros(2 * C, SA_HIDDEN, **F64).requires_grad_(True) if ws2_zero else r(2 * C, SA_HIDDEN),
        M=(0.5 + 0.5 * torch.rand(coef, **F64)).requires_grad_(True),
        N=(0.8 + 0.4 * torch.rand(coef, **F64)).requires_grad_(True),
    )


def to_params(p, *, with_pe=True, with_gc=True, with_sa=True) -> STAAParams:
    gc = GCParams(p["wk"], p["bk"], p["W1"], p["b1"], p["ln_w"], p["ln_b"], p["W2"], p["b2"])
    return STAAParams(
        p["P"] if with_pe else None,
        gc if with_gc else None,
        SAParams(p["Ws1"], p["Ws2"]) if with_sa else None,
        p["M"],
        p["N"],
    )


def leaves(p):
    return {k: v for k, v in p.items() if v is not None}


def rand_x(shape=(T_, B_, C_, H_, W_)):
    return (0.3 + 1.5 * torch.randn(shape, **F64)).requires_grad_(True)


def grads_of(out, state, inputs: dict, seed_tensors):
    gs, gh = seed_tensors
    loss = (out * gs).sum() + (state * gh).sum()
    names = list(inputs)
    values = torch.autograd.grad(loss, [inputs[k] for k in names], allow_unused=True)
    return {k: (torch.zeros_like(inputs[k]) if g is None else g) for k, g in zip(names, values, strict=True)}


def run_reference(x, p, opts, **param_kw):
    return staa_lif_reference(x, to_params(p, **param_kw), return_final_state=True, **opts)


# ---------------------------------------------------------------------------------------------------
# Reference vs the independent loop, every option


CASES = {
    "default": {},
    "gc_fusion_mul": dict(gc_fusion="mul"),
    "gc_no_layer_norm": dict(gc_layer_norm=False),
    "gc_no_bias": dict(_gc_bias=False),
    "coefficient_map_tanh": dict(coefficient_map="tanh"),
    "coefficient_shape_CHW": dict(_coefficient_shape="CHW"),
    "coefficient_shape_scalar": dict(_coefficient_shape="scalar"),
    "pe_shape_TC": dict(_pe_shape="TC"),
    "pe_shape_T": dict(_pe_shape="T"),
    "sa_gate_softmax": dict(sa_gate="softmax"),
    "sa_gate_scaled_logits": dict(sa_gate="scaled_logits"),
    "alpha_1.5": dict(alpha=1.5),
    "detach_reset": dict(detach_reset=True),
    "v_reset_-0.2": dict(v_reset=-0.2),
    "tsrd_step": dict(drop_mask=STEP_MASK),
    "tsrd_sample": dict(drop_mask=SAMPLE_MASK),
    "tsrd_all_step": dict(drop_mask=STEP_MASK, tsrd_scope="all"),
    "tsrd_all_sample": dict(drop_mask=SAMPLE_MASK, tsrd_scope="all"),
}


def setup_case(name):
    case = dict(CASES[name])
    p = make_params(case.pop("_pe_shape", "TCHW"), case.pop("_coefficient_shape", "C"), case.pop("_gc_bias", True))
    if "drop_mask" in case:
        case["drop_mask"] = case["drop_mask"].to(DEVICE)
    return p, case


@pytest.mark.parametrize("name", list(CASES))
def test_reference_matches_per_step_loop(name):
    p, opts = setup_case(name)
    x = rand_x()
    inputs = {"x": x, **leaves(p)}
    seeds = (torch.randn(T_, B_, C_, H_, W_, **F64), torch.randn(B_, C_, H_, W_, **F64))

    s_ref, h_ref = run_reference(x, p, opts)
    s_loop, h_loop = loop_staa(x, p, **opts)
    assert torch.equal(s_ref, s_loop), f"{(s_ref != s_loop).sum().item()} spikes differ"
    torch.testing.assert_close(h_ref, h_loop, **TOL)
    rate = s_ref.mean().item()
    assert 0.05 < rate < 0.95, rate  # both firing and silent neurons: the test sees the dynamics

    g_ref = grads_of(s_ref, h_ref, inputs, seeds)
    g_loop = grads_of(s_loop, h_loop, inputs, seeds)
    for key in inputs:
        torch.testing.assert_close(g_ref[key], g_loop[key], **TOL, msg=lambda m, k=key: f"grad of {k}: {m}")
    # the gradients are not trivially zero (the key bias's is: a softmax ignores a common shift)
    for key in ("x", "P", "wk", "W1", "W2", "Ws1", "Ws2", "M", "N"):
        assert g_ref[key].abs().sum() > 0, key


def baseline(name, p, opts):
    """The run a case's switch departs from: (params, opts, equivalent) where ``equivalent`` is None or a
    (params, opts) pair that the switch must reproduce exactly (what the option means, as an equation)."""
    if name == "gc_no_bias":  # no bias == a zero bias; a nonzero bias changes the result
        biased = dict(p, bk=torch.randn(1, **F64), b1=torch.randn(GC_HIDDEN, **F64), b2=torch.randn(C_, **F64))
        zero = dict(p, bk=torch.zeros(1, **F64), b1=torch.zeros(GC_HIDDEN, **F64), b2=torch.zeros(C_, **F64))
        return biased, {}, (zero, {})
    if name.startswith("pe_shape"):  # one value per (t, c) or per t, shared by the pixels
        full = p["P"].detach().expand(T_, C_, H_, W_)
        return dict(p, P=full + 0.3 * torch.randn_like(full)), {}, (dict(p, P=full.contiguous()), {})
    if name == "coefficient_shape_CHW":  # one value per neuron; a [C] M cannot vary over the pixels
        return dict(p, M=p["M"][:, 0, 0], N=p["N"][:, 0, 0]), {}, None
    if name == "coefficient_shape_scalar":  # one value for the layer == the same value for every channel
        return (
            dict(p, M=p["M"] + 0.2 * torch.rand(C_, **F64), N=p["N"] + 0.2 * torch.rand(C_, **F64)),
            {},
            (dict(p, M=p["M"].expand(C_), N=p["N"].expand(C_)), {}),
        )
    if name == "tsrd_sample":  # per-sample draws vs one draw per step (sample 0's column)
        return p, dict(drop_mask=SAMPLE_MASK[:, 0].to(DEVICE)), None
    if name.startswith("tsrd_all"):  # scope "all" vs "step_attention" with the same mask
        return p, dict(drop_mask=opts["drop_mask"]), None
    return p, {}, None


@pytest.mark.parametrize("name", [n for n in CASES if n != "default"])
def test_each_option_changes_the_result(name):
    p, opts = setup_case(name)
    x = rand_x()
    s, h = run_reference(x, p, opts)
    p0, opts0, equivalent = baseline(name, p, opts)
    s0, h0 = run_reference(x, p0, opts0)
    if name == "detach_reset":  # forward unchanged, gradient differs
        assert torch.equal(s, s0) and torch.equal(h, h0)
        g = torch.autograd.grad(s.sum() + h.sum(), x)[0]
        g0 = torch.autograd.grad(s0.sum() + h0.sum(), x)[0]
        assert (g - g0).abs().max() > 1e-3
        return
    assert (h - h0).abs().max() > 1e-3
    if name == "tsrd_sample":  # sample 0 saw the same mask as the per-step run
        assert torch.equal(s[:, 0], s0[:, 0]) and not torch.equal(s[:, 1:], s0[:, 1:])
    if equivalent is not None:
        s1, h1 = run_reference(x, *equivalent)
        assert torch.equal(s, s1)
        torch.testing.assert_close(h, h1, **TOL)


# ---------------------------------------------------------------------------------------------------
# Step attention starts as plain addition; TSRD


@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
def test_zero_ws2_step_attention_is_plain_addition(gate):
    p = make_params(ws2_zero=True)
    x = rand_x()
    s, h = run_reference(x, p, dict(sa_gate=gate))
    s_plain, h_plain = run_reference(x, p, {}, with_sa=False)
    assert torch.equal(s, s_plain) and torch.equal(h, h_plain)
    inputs = {k: v for k, v in leaves(p).items() if k not in ("Ws1", "Ws2")}
    inputs["x"] = x
    seeds = (torch.randn_like(s), torch.randn_like(h))
    g, g_plain = grads_of(s, h, inputs, seeds), grads_of(s_plain, h_plain, inputs, seeds)
    for key in inputs:
        torch.testing.assert_close(g[key], g_plain[key], **TOL)


def test_zero_ws2_scaled_logits_halves_the_sum():
    """sig(alpha * 0) = 1/2: the "scaled_logits" gate starts as (A + B) / 2, i.e. M / 2 and N / 2."""
    p = make_params(ws2_zero=True)
    x = rand_x()
    s, h = run_reference(x, p, dict(sa_gate="scaled_logits"))
    half = dict(p, M=p["M"] / 2, N=p["N"] / 2)
    s_half, h_half = run_reference(x, half, {}, with_sa=False)
    assert torch.equal(s, s_half)
    torch.testing.assert_close(h, h_half, **TOL)


def test_plain_path_is_the_library_leaky_neuron():
    """Without PE, GC and SA the STAA-LIF is ``U = M H + N X`` with a hard reset: the library's leaky neuron."""
    p = make_params()
    x = rand_x()
    s, h = staa_lif_reference(x, STAAParams(None, None, None, p["M"], p["N"]), return_final_state=True)
    s_lif, h_lif = multistep_leaky_reference(
        x, decay=p["M"], input_gain=p["N"], surrogate_function=Rectangle(1.0), return_final_state=True
    )
    assert torch.equal(s, s_lif) and torch.equal(h, h_lif)
    g = torch.autograd.grad(s.sum() + h.sum(), [x, p["M"], p["N"]])
    g_lif = torch.autograd.grad(s_lif.sum() + h_lif.sum(), [x, p["M"], p["N"]])
    for a, b in zip(g, g_lif, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_fires_at_exactly_the_threshold():
    """Heaviside(0) = 1 (paper): U = 1 fires, U = 1 - 2^-40 does not."""
    x = torch.tensor([1.0, 1.0 - 2.0**-40, 0.5], **F64).reshape(3, 1, 1, 1, 1).expand(3, 1, 1, 1, 2)
    params = STAAParams(None, None, None, torch.zeros(1, **F64), torch.ones(1, **F64))
    s = staa_lif_reference(x.contiguous(), params)
    assert s[:, 0, 0, 0, 0].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("training", [True, False])
def test_fresh_module_is_the_adaptive_lif(training):
    """At init (P = 0, GC's last conv = 0, fc2 = 0) the module is U = 2 H + 0.1 X, dropped step or not."""
    module = STAALIFNode(T_, C_, H_, W_, drop_prob=0.5, seed=3).to(**F64).train(training)
    x = 4 * rand_x().detach()
    want = multistep_leaky_reference(x, decay=2.0, input_gain=0.1, surrogate_function=Rectangle(1.0))
    got = module(x)
    assert torch.equal(got, want)
    assert 0.02 < want.mean() < 0.98
    assert (module.last_drop_mask is not None) == training


@pytest.mark.parametrize("scope", ["step_attention", "all"])
@pytest.mark.parametrize("k", [0, 2, T_ - 1])
def test_dropped_step_is_plain_addition_and_kept_steps_are_gated(scope, k):
    """Dropping step k only == the gated run up to k, one plain step (from the carried state), gated after."""
    p = make_params()
    x = rand_x().detach()
    mask = torch.zeros(T_, dtype=torch.bool, device=DEVICE)
    mask[k] = True
    s, h = run_reference(x, p, dict(drop_mask=mask, tsrd_scope=scope))

    def part(lo, hi, plain, v_init):
        P = p["P"][lo:hi]
        keep = not (plain and scope == "all")  # scope "all" also drops PE and GC
        params = STAAParams(
            P if keep else None,
            to_params(p).gc if keep else None,
            None if plain else SAParams(p["Ws1"], p["Ws2"]),
            p["M"],
            p["N"],
        )
        return staa_lif_reference(x[lo:hi], params, v_init=v_init, return_final_state=True)

    pieces, state = [], None
    for lo, hi, plain in ((0, k, False), (k, k + 1, True), (k + 1, T_, False)):
        if hi > lo:
            out, state = part(lo, hi, plain, state)
            pieces.append(out)
    assert torch.equal(s, torch.cat(pieces))
    torch.testing.assert_close(h, state, **TOL)
    # and dropping really changed step k
    s_gated, h_gated = run_reference(x, p, {})
    assert torch.equal(s[:k], s_gated[:k])
    assert not torch.equal(h, h_gated)


@pytest.mark.parametrize("scope", ["step_attention", "all"])
def test_per_sample_mask_equals_per_sample_runs(scope):
    p = make_params()
    x = rand_x().detach()
    mask = SAMPLE_MASK.to(DEVICE)
    s, h = run_reference(x, p, dict(drop_mask=mask, tsrd_scope=scope))
    for b in range(B_):
        s_b, h_b = run_reference(x[:, b : b + 1], p, dict(drop_mask=mask[:, b], tsrd_scope=scope))
        assert torch.equal(s[:, b : b + 1], s_b)
        torch.testing.assert_close(h[b : b + 1], h_b, **TOL)


def test_all_or_no_steps_dropped():
    p = make_params()
    x = rand_x().detach()
    s_all, _ = run_reference(x, p, dict(drop_mask=torch.ones(T_, dtype=torch.bool, device=DEVICE)))
    s_plain, _ = run_reference(x, p, {}, with_sa=False)
    assert torch.equal(s_all, s_plain)
    s_none, h_none = run_reference(x, p, dict(drop_mask=torch.zeros(T_, B_, dtype=torch.bool, device=DEVICE)))
    s_gated, h_gated = run_reference(x, p, {})
    assert torch.equal(s_none, s_gated) and torch.equal(h_none, h_gated)
    # scope "all" with every step dropped is the plain neuron on the raw input
    s_raw, _ = run_reference(
        x,
        p,
        dict(drop_mask=torch.ones(T_, dtype=torch.bool, device=DEVICE), tsrd_scope="all"),
        with_pe=False,
        with_gc=False,
        with_sa=False,
    )
    s_all2, _ = run_reference(x, p, dict(drop_mask=torch.ones(T_, dtype=torch.bool, device=DEVICE), tsrd_scope="all"))
    assert torch.equal(s_all2, s_raw)


def randomized_module(**kw) -> STAALIFNode:
    module = STAALIFNode(T_, C_, H_, W_, **kw).to(**F64)
    with torch.no_grad():
        for name, prm in module.named_parameters():
            if name in ("M", "N"):
                prm.copy_(0.5 + 0.5 * torch.rand_like(prm))
            else:
                prm.add_(0.4 * torch.randn_like(prm))
    return module


def test_eval_never_drops():
    module = randomized_module(drop_prob=1.0)
    x = rand_x().detach()
    module.eval()
    got = module(x)
    assert module.last_drop_mask is None
    assert torch.equal(got, staa_lif_reference(x, module.params(), **module.options()))
    module.train()
    dropped = module(x)
    assert module.last_drop_mask.tolist() == [True] * T_
    assert torch.equal(dropped, staa_lif_reference(x, module.params()._replace(sa=None), **module.options()))
    assert not torch.equal(dropped, got)


def test_explicit_mask_is_used_in_training_and_eval():
    module = randomized_module(drop_prob=0.0)
    x = rand_x().detach()
    mask = STEP_MASK.to(DEVICE)
    want = staa_lif_reference(x, module.params(), drop_mask=mask, **module.options())
    for training in (True, False):
        module.train(training)
        assert torch.equal(module(x, drop_mask=mask), want)
        assert torch.equal(module.last_drop_mask, mask)
    module.train()
    module(x)
    assert module.last_drop_mask is None  # drop_prob 0: nothing drawn


def test_same_seed_same_mask_and_output_different_seed_differs():
    def make(seed):
        torch.manual_seed(0)  # same weights for every seed
        return randomized_module(drop_prob=0.5, seed=seed)

    x = rand_x().detach()
    a, b, c = make(7), make(7), make(8)
    outs = {}
    for name, module in (("a", a), ("b", b), ("c", c)):
        outs[name] = [(module(x), module.last_drop_mask.clone()) for _ in range(4)]
    masks_a = torch.stack([m for _, m in outs["a"]])
    masks_c = torch.stack([m for _, m in outs["c"]])
    for (ya, ma), (yb, mb) in zip(outs["a"], outs["b"], strict=True):
        assert torch.equal(ma, mb) and torch.equal(ya, yb)
    assert not torch.equal(masks_a, masks_c)
    assert len({tuple(m.tolist()) for m in masks_a}) > 1  # each call draws afresh
    # re-seeding restarts the sequence; a copy carries the generator state
    a.manual_seed(7)
    twin = copy.deepcopy(a)
    pickled = pickle.loads(pickle.dumps(a))
    for i in range(2):
        assert torch.equal(a.draw_drop_mask(B_), masks_a[i])
        assert torch.equal(twin.draw_drop_mask(B_), masks_a[i])
        assert torch.equal(pickled.draw_drop_mask(B_), masks_a[i])


def test_global_rng_without_seed():
    module = randomized_module(drop_prob=0.5, tsrd_granularity="sample")
    x = rand_x().detach()
    torch.manual_seed(11)
    y1, m1 = module(x), module.last_drop_mask
    torch.manual_seed(11)
    y2, m2 = module(x), module.last_drop_mask
    assert m1.shape == (T_, B_) and m1.dtype == torch.bool
    assert torch.equal(m1, m2) and torch.equal(y1, y2)
    assert torch.equal(y1, staa_lif_reference(x, module.params(), drop_mask=m1, **module.options()))


def test_reference_generator_draw_is_reproducible():
    p = make_params()
    x = rand_x().detach()
    outs = []
    for _ in range(2):
        g = torch.Generator(device=DEVICE).manual_seed(5)
        outs.append(run_reference(x, p, dict(drop_prob=0.5, generator=g))[0])
    assert torch.equal(*outs)
    g = torch.Generator(device=DEVICE).manual_seed(5)
    mask = draw_drop_mask(T_, B_, 0.5, generator=g, device=DEVICE)
    assert torch.equal(outs[0], run_reference(x, p, dict(drop_mask=mask))[0])


@pytest.mark.parametrize("granularity,shape", [("step", (4000,)), ("sample", (400, 10))])
def test_drop_mask_rate_and_shape(granularity, shape):
    mask = draw_drop_mask(shape[0], 10, 0.1, granularity=granularity, device=DEVICE)
    assert mask.shape == shape and mask.dtype == torch.bool
    assert abs(mask.float().mean().item() - 0.1) < 0.02
    assert not draw_drop_mask(50, 3, 0.0, granularity=granularity).any()
    assert draw_drop_mask(50, 3, 1.0, granularity=granularity).all()


# ---------------------------------------------------------------------------------------------------
# Global context block


def test_gc_softmax_is_over_pixels():
    p = make_params()
    x = rand_x().detach()
    att = global_context_attention_reference(x, p["wk"], p["bk"])
    assert att.shape == (T_, B_, H_ * W_)
    torch.testing.assert_close(att.sum(-1), torch.ones(T_, B_, **F64), **TOL)
    gc = to_params(p).gc
    # permuting the pixels permutes the output the same way (the context is order-free)
    perm = torch.randperm(H_ * W_, device=DEVICE)
    xp = x.flatten(-2)[..., perm].reshape(x.shape)
    y = global_context_reference(x, gc)
    torch.testing.assert_close(global_context_reference(xp, gc), y.flatten(-2)[..., perm].reshape(y.shape), **TOL)
    # a constant key attends uniformly: the context is the pixel mean
    flat_key = gc._replace(key_weight=torch.zeros_like(gc.key_weight))
    v = global_context_vector_reference(x, flat_key)
    mean_as_image = x.mean(dim=(-2, -1), keepdim=True).expand(x.shape)
    torch.testing.assert_close(v, global_context_vector_reference(mean_as_image, gc), **TOL)
    # a key that singles out one pixel takes that pixel's features as the context
    spike_x = x.clone()
    spike_x[..., 1, 2] = 0
    spike_x[..., 0, 1, 2] = 50.0
    onehot = gc._replace(key_weight=torch.eye(C_, **F64)[0])
    v1 = global_context_vector_reference(spike_x, onehot)
    pixel = spike_x[..., 1:2, 2:3].expand(spike_x.shape)
    torch.testing.assert_close(v1, global_context_vector_reference(pixel, onehot), rtol=1e-9, atol=1e-9)


class OfficialStyleContextBlock(torch.nn.Module):
    """GCNet's ContextBlock forward (pooling 'att'), on the layers of our module: checks that the flattened
    parameters the reference gets mean what the nn layers mean."""

    def __init__(self, ours: GlobalContextBlock):
        super().__init__()
        self.ours = ours

    def forward(self, x):  # [N, C, H, W]
        n, c, h, w = x.shape
        mask = self.ours.conv_mask(x).view(n, 1, h * w).softmax(dim=2).unsqueeze(-1)  # [N, 1, HW, 1]
        context = torch.matmul(x.view(n, c, h * w).unsqueeze(1), mask).view(n, c, 1, 1)
        if self.ours.fusion == "add":
            return x + self.ours.channel_add_conv(context)
        return x * torch.sigmoid(self.ours.channel_mul_conv(context))


@pytest.mark.parametrize("fusion", ["add", "mul"])
@pytest.mark.parametrize("layer_norm,bias", [(True, True), (False, True), (True, False)])
def test_gc_module_matches_gcnet_forward(fusion, layer_norm, bias):
    block = GlobalContextBlock(C_, 4, fusion=fusion, layer_norm=layer_norm, bias=bias).to(**F64)
    with torch.no_grad():
        for prm in block.parameters():
            prm.add_(0.5 * torch.randn_like(prm))
    x = torch.randn(T_, B_, C_, H_, W_, **F64)
    want = OfficialStyleContextBlock(block)(x.flatten(0, 1)).view_as(x)
    torch.testing.assert_close(block(x), want, **TOL)
    torch.testing.assert_close(block(x.flatten(0, 1)), want.flatten(0, 1), **TOL)
    prefix = "channel_add_conv" if fusion == "add" else "channel_mul_conv"
    keys = set(block.state_dict())
    assert f"{prefix}.3.weight" in keys and ("conv_mask.bias" in keys) == bias
    assert (f"{prefix}.1.weight" in keys) == layer_norm


@pytest.mark.parametrize("fusion,scale", [("add", None), ("mul", 0.5)])
def test_gc_module_init_is_identity_or_half(fusion, scale):
    block = GlobalContextBlock(C_, 4, fusion=fusion).to(**F64)
    x = torch.randn(B_, C_, H_, W_, **F64)
    torch.testing.assert_close(block(x), x if scale is None else scale * x, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------
# Modules: parameters, layout, backends, dtypes


def test_module_forward_is_the_reference_on_its_parameters():
    module = randomized_module(gc_fusion="mul", sa_gate="softmax", coefficient_map="tanh", drop_prob=0.3, seed=1)
    x = rand_x()
    y = module(x)
    mask = module.last_drop_mask
    p = module.params()
    want = staa_lif_reference(x, p, drop_mask=mask, gc_fusion="mul", sa_gate="softmax", coefficient_map="tanh")
    assert torch.equal(y, want)
    assert module.M.shape == (C_,) and module.pe.weight.shape == (T_, C_, H_, W_)
    assert module.sa.fc1.weight.shape == (C_ // 4, C_) and module.sa.fc2.weight.shape == (2 * C_, C_ // 4)


def test_state_dict_keys_and_shapes():
    module = STAALIFNode(T_, C_, H_, W_)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes == {
        "M": (C_,),
        "N": (C_,),
        "pe.weight": (T_, C_, H_, W_),
        "gc.conv_mask.weight": (1, C_, 1, 1),
        "gc.conv_mask.bias": (1,),
        "gc.channel_add_conv.0.weight": (3, C_, 1, 1),
        "gc.channel_add_conv.0.bias": (3,),
        "gc.channel_add_conv.1.weight": (3, 1, 1),
        "gc.channel_add_conv.1.bias": (3, 1, 1),
        "gc.channel_add_conv.3.weight": (C_, 3, 1, 1),
        "gc.channel_add_conv.3.bias": (C_,),
        "sa.fc1.weight": (3, C_),
        "sa.fc2.weight": (2 * C_, 3),
    }
    assert torch.all(module.M == 2.0) and torch.all(module.N == 0.1)
    assert not module.pe.weight.any() and not module.sa.fc2.weight.any()
    other = STAALIFNode(T_, C_, H_, W_, pe_shape="T", coefficient_shape="scalar", gc_fusion="mul", sa_reduction=6)
    shapes = {k: tuple(v.shape) for k, v in other.state_dict().items()}
    assert shapes["pe.weight"] == (T_, 1, 1, 1) and shapes["M"] == () and shapes["sa.fc1.weight"] == (2, C_)
    assert "gc.channel_mul_conv.3.weight" in shapes
    assert STAALIFNode(T_, C_, pe_shape="TC").pe.weight.shape == (T_, C_, 1, 1)
    assert STAALIFNode(T_, C_, H_, W_, coefficient_shape="CHW").N.shape == (C_, H_, W_)


@pytest.mark.parametrize("granularity", ["step", "sample"])
def test_bt_layout_equals_tb_layout(granularity):
    tb = randomized_module(drop_prob=0.5, seed=4, tsrd_granularity=granularity)
    bt = STAALIFNode(T_, C_, H_, W_, drop_prob=0.5, seed=4, tsrd_granularity=granularity, layout="BT").to(**F64)
    bt.load_state_dict(tb.state_dict())
    x = rand_x()
    x_bt = x.detach().transpose(0, 1).contiguous().requires_grad_(True)
    y_tb, y_bt = tb(x), bt(x_bt)
    assert torch.equal(tb.last_drop_mask, bt.last_drop_mask)  # time first in both layouts
    assert torch.equal(y_bt.transpose(0, 1), y_tb)
    g = torch.randn_like(y_tb)
    y_tb.backward(g)
    y_bt.backward(g.transpose(0, 1))
    torch.testing.assert_close(x_bt.grad.transpose(0, 1), x.grad, **TOL)
    for (name, a), (_, b) in zip(tb.named_parameters(), bt.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")
    pe = PositionEncoding(T_, C_, H_, W_, layout="BT").to(**F64)
    with torch.no_grad():
        pe.weight.normal_()
    torch.testing.assert_close(pe(x_bt).transpose(0, 1), x + pe.weight[:, None], **TOL)


@pytest.mark.parametrize("shape", ["TCHW", "TC", "T"])
def test_position_encoding_module(shape):
    pe = PositionEncoding(T_, C_, H_, W_, shape=shape).to(**F64)
    assert pe.weight.shape == PE_SIZES[shape] and not pe.weight.any()
    with torch.no_grad():
        pe.weight.normal_()
    x = torch.randn(T_, B_, C_, H_, W_, **F64)
    want = torch.stack([x[t] + pe.weight[t] for t in range(T_)])
    torch.testing.assert_close(pe(x), want, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_backends_give_the_reference(backend):
    module = randomized_module(backend=backend).eval()
    x = rand_x().detach()
    assert torch.equal(module(x), staa_lif_reference(x, module.params(), **module.options()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_input_keeps_fp32_state(dtype):
    module = randomized_module().float().eval()
    x = (0.3 + 1.5 * torch.randn(T_, B_, C_, H_, W_, device=DEVICE)).to(dtype)
    y = module(x)
    assert y.dtype == dtype
    want = staa_lif_reference(x.float(), module.params(), **module.options())
    assert torch.equal(y.float(), want)


def test_repr_names_the_options():
    text = repr(STAALIFNode(T_, C_, H_, W_, sa_gate="softmax", seed=3))
    for piece in (
        "sa_gate='softmax'",
        "coefficient_map='raw'",
        "tsrd_scope='step_attention'",
        "seed=3",
        "drop_prob=0.1",
        "fusion='add'",
        "shape='TCHW'",
    ):
        assert piece in text, piece


# ---------------------------------------------------------------------------------------------------
# errors


def test_backend_and_layout_arguments():
    # GC's pooling fused (python_tests/ops/test_global_context.py)
    make = functools.partial(STAALIFNode, T_, C_, H_, W_)
    check_backend_and_layout_arguments(make, "STAALIFNode", ("auto", "torch", "triton"))
    with pytest.raises(ValueError, match="layout must be 'TB'"):
        PositionEncoding(T_, C_, H_, W_, layout="TBCHW")


@pytest.mark.parametrize(
    "option,value,match",
    [
        ("pe_shape", "HW", "pe_shape must be one of"),
        ("gc_fusion", "concat", "gc_fusion must be one of"),
        ("sa_gate", "tanh", "sa_gate must be one of"),
        ("coefficient_map", "exp", "coefficient_map must be one of"),
        ("coefficient_shape", "HW", "coefficient_shape must be one of"),
        ("tsrd_scope", "gc", "tsrd_scope must be one of"),
        ("tsrd_granularity", "layer", "tsrd_granularity must be one of"),
        ("drop_prob", 1.5, r"drop_prob must be a probability in \[0, 1\]"),
        ("drop_prob", -0.1, r"drop_prob must be a probability in \[0, 1\]"),
        ("alpha", 0.0, "alpha must be positive"),
        ("alpha", float("nan"), "alpha must be a finite float"),
        ("reduction", 0, "reduction must be a positive int"),
        ("reduction", 16, r"reduction \(16\) cannot be greater than C \(12\)"),
        ("sa_reduction", 13, r"sa_reduction \(13\) cannot be greater than C \(12\)"),
        ("v_threshold", float("inf"), "v_threshold must be a finite float"),
        ("m_init", "2", "m_init must be a finite float"),
        ("seed", "abc", "seed must be an int or None"),
    ],
)
def test_bad_option_values_raise(option, value, match):
    with pytest.raises(ValueError, match=match):
        STAALIFNode(T_, C_, H_, W_, **{option: value})


def test_missing_h_w_raise():
    with pytest.raises(ValueError, match="pe_shape='TCHW'.*needs H and W"):
        STAALIFNode(T_, C_)
    with pytest.raises(ValueError, match="coefficient_shape='CHW'.*needs H and W"):
        STAALIFNode(T_, C_, pe_shape="T", coefficient_shape="CHW")
    with pytest.raises(ValueError, match="shape='TCHW'.*needs H and W"):
        PositionEncoding(T_, C_, H_)
    STAALIFNode(T_, C_, pe_shape="TC")(torch.randn(T_, B_, C_, 2, 3))  # any H, W then


@pytest.mark.parametrize("layout", ["TB", "BT"])
def test_mismatched_input_raises(layout):
    module = STAALIFNode(T_, C_, H_, W_, layout=layout)
    as_layout = (lambda s: s) if layout == "TB" else (lambda s: (s[1], s[0]) + s[2:])
    with pytest.raises(ValueError, match=f"built for T = {T_} time steps but the input has {T_ + 1}"):
        module(torch.randn(as_layout((T_ + 1, B_, C_, H_, W_))))
    with pytest.raises(ValueError, match=f"built for C = {C_} channels but the input has {C_ + 1} at dim 2"):
        module(torch.randn(as_layout((T_, B_, C_ + 1, H_, W_))))
    with pytest.raises(ValueError, match=f"built for H = {H_} but the input has {H_ + 1} at dim 3"):
        module(torch.randn(as_layout((T_, B_, C_, H_ + 1, W_))))
    with pytest.raises(ValueError, match=f"built for W = {W_} but the input has {W_ - 1} at dim 4"):
        module(torch.randn(as_layout((T_, B_, C_, H_, W_ - 1))))
    with pytest.raises(ValueError, match=r"must have shape \[(T, B|B, T), C, H, W\]"):
        module(torch.randn(as_layout((T_, B_, C_, H_))))
    with pytest.raises(ValueError, match=r"drop_mask must have shape \[T\]"):
        module(torch.randn(as_layout((T_, B_, C_, H_, W_))), drop_mask=torch.zeros(B_, T_, dtype=torch.bool))
    with pytest.raises(TypeError, match="drop_mask must be a bool tensor"):
        module(torch.randn(as_layout((T_, B_, C_, H_, W_))), drop_mask=torch.zeros(T_))
    pe = PositionEncoding(T_, C_, H_, W_, layout=layout)
    with pytest.raises(ValueError, match=f"built for C = {C_} channels"):
        pe(torch.randn(as_layout((T_, B_, C_ - 1, H_, W_))))


def test_gc_module_errors():
    block = GlobalContextBlock(C_)
    with pytest.raises(ValueError, match=f"built for C = {C_}"):
        block(torch.randn(B_, C_ + 1, H_, W_))
    with pytest.raises(ValueError, match=f"built for C = {C_}"):
        block(torch.randn(C_, H_, W_))
    with pytest.raises(ValueError, match="gc_fusion must be one of"):
        GlobalContextBlock(C_, fusion="channel_add")
    with pytest.raises(ValueError, match=r"reduction \(13\) cannot be greater than C \(12\)"):
        GlobalContextBlock(C_, 13)


def test_reference_argument_errors():
    p = make_params()
    x = rand_x().detach()
    params = to_params(p)
    with pytest.raises(ValueError, match=r"needs x of shape \[T, B, C, H, W\]"):
        staa_lif_reference(x[0], params)
    with pytest.raises(ValueError, match=r"position must have shape \[T, C, H, W\]"):
        staa_lif_reference(x, params._replace(position=p["P"][:, :, :1]))
    with pytest.raises(ValueError, match=r"position must have shape"):
        staa_lif_reference(x[:-1], params)
    with pytest.raises(ValueError, match=r"gc.key_weight must have shape \[12\]"):
        staa_lif_reference(x, params._replace(gc=params.gc._replace(key_weight=p["wk"][:-1])))
    with pytest.raises(ValueError, match=r"gc.up_weight must have shape \[12, 3\]"):
        staa_lif_reference(x, params._replace(gc=params.gc._replace(up_weight=p["W2"].t())))
    with pytest.raises(ValueError, match=r"gc.ln_weight must have shape \[3\]"):
        staa_lif_reference(x, params._replace(gc=params.gc._replace(ln_weight=p["W2"][:, 0])))
    with pytest.raises(ValueError, match=r"sa.w2 must have shape \[24, 2\]"):
        staa_lif_reference(x, params._replace(sa=SAParams(p["Ws1"], p["Ws2"][:C_])))
    with pytest.raises(ValueError, match=r"m \(M\) must be a tensor of shape \[C\]"):
        staa_lif_reference(x, params._replace(m=p["M"][:-1]))
    with pytest.raises(TypeError, match="params must be an STAAParams"):
        staa_lif_reference(x, tuple(params))
    with pytest.raises(ValueError, match="pass either drop_mask or generator"):
        staa_lif_reference(x, params, drop_mask=STEP_MASK, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"v_init must have shape \[3, 12, 4, 6\]"):
        staa_lif_reference(x, params, v_init=x[0, :1])
    with pytest.raises(ValueError, match="sa_gate must be one of"):
        staa_lif_reference(x, params, sa_gate="relu")
    with pytest.raises(ValueError, match="drop_prob must be a probability"):
        staa_lif_reference(x, params, drop_prob=2)
    with pytest.raises(ValueError, match="tsrd_granularity must be one of"):
        draw_drop_mask(T_, B_, 0.1, granularity="batch")
