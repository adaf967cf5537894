// C++ test of the torch-free CPU core (run by CTest): the leaky forward / backward of leaky_cpu.cpp
// against a plain scalar loop written here from docs/neuron.md, plus the fp16/bf16 conversions and the
// host exp of csrc/include/snnkernels. Build with -ffp-contract=off (CMakeLists.txt does) so the
// reference loop rounds op by op like the kernels.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "leaky/leaky_cpu.h"
#include "snnkernels/convert.h"
#include "snnkernels/surrogate.h"

namespace {

int g_failures = 0;

void fail(const std::string& what) {
  if (++g_failures <= 20) std::printf("FAIL: %s\n", what.c_str());
}

// The message is only built when the check fails (the conversion tests run millions of checks).
#define EXPECT(cond, what) \
  do {                     \
    if (!(cond)) fail(what); \
  } while (0)

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---------------- scalar reference (docs/neuron.md) ----------------

float sg_ref(int id, float x, float p) {
  switch (id) {
    case 0: {
      const float z = (1.5707963267948966f * p) * x;
      return (p * 0.5f) / (1.0f + z * z);
    }
    case 1: {
      const float s = 1.0f / (1.0f + std::exp(-(p * x)));
      return p * s * (1.0f - s);
    }
    case 2: {
      const float d = p - std::fabs(x);
      return (d > 0.0f ? d : 0.0f) / (p * p);
    }
    case 3:
      return std::fabs(x) < p * 0.5f ? 1.0f / p : 0.0f;
    case 4:
      return (p * 0.5f) * std::exp(-(p * std::fabs(x)));
    case 5: {
      const float z = 1.0f + p * std::fabs(x);
      return (p * 0.5f) / (z * z);
    }
    case 6: {
      const float z = 1.0f + std::fabs(x);
      return p / (z * z);
    }
    default: {
      const float z = p * x;
      return std::exp(-(z * z)) * (p * 0.5641895835477563f);
    }
  }
}

// Surrogates whose formula calls exp: the kernels' exp differs from libm's by up to an ulp.
bool uses_exp(int id) { return id == snnk::kSigmoid || id == snnk::kPiecewiseExp || id == snnk::kErf; }

struct Config {
  int64_t T, B, C, S;  // x is [T, B, C, S]: N = B * C * S, channel of neuron n = (n / S) % C
  int64_t chunk;
  bool hard, strict, detach, has_v0, per_channel, has_gvf;
  bool coefficient_grads = true;  // false: the backward skips the coefficient sums (their own code path)
  bool vseq = false;              // the forward stores v_seq, the backward gets dL/dv_seq
  int sg;
};

struct Problem {
  Config cfg;
  int64_t N;
  std::vector<float> x, v0, gs, gvf, gvs, decay, gain, bias;  // decay/gain/bias: [C] or [1]; gvs: dL/dv_seq
  float vth = 1.0f, vreset = -0.1f, v_init_value = 0.2f, sg_param = 1.0f;
};

Problem make_problem(const Config& cfg, uint32_t seed) {
  Problem pr;
  pr.cfg = cfg;
  pr.N = cfg.B * cfg.C * cfg.S;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.45f, 1.2f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  pr.x.resize(cfg.T * pr.N);
  for (auto& v : pr.x) v = nd(rng);
  for (int64_t i = 0; i < std::min<int64_t>(pr.N, 9); ++i) pr.x[i] = 1.0f;  // h == threshold hits
  pr.v0.resize(pr.N);
  for (auto& v : pr.v0) v = 0.5f * (ud(rng) - 0.5f);
  pr.gs.resize(cfg.T * pr.N);
  for (auto& v : pr.gs) v = nd(rng);
  pr.gvf.resize(pr.N);
  for (auto& v : pr.gvf) v = nd(rng);
  pr.gvs.resize(cfg.T * pr.N);
  for (auto& v : pr.gvs) v = nd(rng);
  const int64_t c = cfg.per_channel ? cfg.C : 1;
  for (int64_t i = 0; i < c; ++i) {
    pr.decay.push_back(cfg.per_channel ? 0.4f + 0.5f * ud(rng) : 0.5f);
    pr.gain.push_back(cfg.per_channel ? 0.5f + ud(rng) : 1.0f);
    pr.bias.push_back(cfg.per_channel ? 0.1f * (ud(rng) - 0.5f) : 0.0f);
  }
  const float params[snnk::kNumSurrogates] = {2.0f, 4.0f, 1.0f, 1.0f, 1.0f, 2.0f, 1.0f, 2.0f};
  pr.sg_param = params[cfg.sg];
  if (!cfg.hard) pr.vreset = 0.0f;
  return pr;
}

struct RefResult {
  std::vector<float> spikes, v_final, grad_x, grad_v0, g_decay, g_gain, g_bias;
  std::vector<float> states;  // [T + 1, N]: v entering each step (v_seq: rows 1 .. T)
};

RefResult reference(const Problem& pr) {
  const Config& c = pr.cfg;
  const int64_t N = pr.N, T = c.T;
  RefResult r;
  r.spikes.assign(T * N, 0.0f);
  r.states.assign((T + 1) * N, 0.0f);
  std::vector<float> h(T * N);
  auto coef = [&](const std::vector<float>& t, int64_t n) { return t.size() == 1 ? t[0] : t[(n / c.S) % c.C]; };
  for (int64_t n = 0; n < N; ++n) {
    float v = c.has_v0 ? pr.v0[n] : pr.v_init_value;
    const float a = coef(pr.decay, n), b = coef(pr.gain, n), cc = coef(pr.bias, n);
    for (int64_t t = 0; t < T; ++t) {
      r.states[t * N + n] = v;
      // an infinite state of a leaking neuron charges to NaN (docs/neuron.md "Non-finite values")
      const float charge = a * v + b * pr.x[t * N + n] + cc;
      const float ht = a != 1.0f ? charge - (v - v) : charge;
      h[t * N + n] = ht;
      const float d = ht - pr.vth;
      const bool s = c.strict ? d > 0.0f : d >= 0.0f;
      r.spikes[t * N + n] = s ? 1.0f : 0.0f;
      v = c.hard ? ht * (s ? 0.0f : 1.0f) + pr.vreset * (s ? 1.0f : 0.0f) : ht - pr.vth * (s ? 1.0f : 0.0f);
    }
    r.states[T * N + n] = v;
  }
  r.v_final.assign(r.states.begin() + T * N, r.states.end());
  r.grad_x.assign(T * N, 0.0f);
  r.grad_v0.assign(N, 0.0f);
  r.g_decay.assign(N, 0.0f);
  r.g_gain.assign(N, 0.0f);
  r.g_bias.assign(N, 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    const float a = coef(pr.decay, n), b = coef(pr.gain, n);
    float gv = c.has_gvf ? pr.gvf[n] : 0.0f;
    for (int64_t t = T - 1; t >= 0; --t) {
      if (c.vseq) gv = gv + pr.gvs[t * N + n];  // dL/dv_t = a dL/dh_{t+1} (+ dL/dv_T) + dL/dv_seq[t]
      const float ht = h[t * N + n];
      const float sg = sg_ref(c.sg, ht - pr.vth, pr.sg_param);
      const float s = r.spikes[t * N + n];
      float dvdh;
      if (c.hard) {
        dvdh = s > 0.0f ? 0.0f : 1.0f;
        if (!c.detach) dvdh = dvdh + (pr.vreset - ht) * sg;
      } else {
        dvdh = c.detach ? 1.0f : 1.0f - pr.vth * sg;
      }
      const float gh = pr.gs[t * N + n] * sg + gv * dvdh;
      r.grad_x[t * N + n] = gh * b;
      gv = gh * a;
      r.g_decay[n] = r.g_decay[n] + gh * r.states[t * N + n];
      r.g_gain[n] = r.g_gain[n] + gh * pr.x[t * N + n];
      r.g_bias[n] = r.g_bias[n] + gh;
    }
    r.grad_v0[n] = gv;
  }
  return r;
}

// ---------------- the CPU core ----------------

struct CoreResult {
  std::vector<float> spikes, v_final, ckpt, v_seq, grad_x, grad_v0, g_decay, g_gain, g_bias;
};

CoreResult run_core(const Problem& pr, bool parallel_driver) {
  const Config& c = pr.cfg;
  const int64_t N = pr.N, T = c.T;
  CoreResult r;
  r.spikes.assign(T * N, -7.0f);
  r.v_final.assign(N, -7.0f);
  r.ckpt.assign(snnk::leaky_num_checkpoints(T, c.chunk) * N, -7.0f);
  r.v_seq.assign(c.vseq ? T * N : 0, -7.0f);
  snnk::LeakyFwdParams f;
  f.x = pr.x.data();
  f.v_init = c.has_v0 ? pr.v0.data() : nullptr;
  f.has_v_init = c.has_v0;
  if (c.per_channel) {
    f.decay_t = pr.decay.data();
    f.gain_t = pr.gain.data();
    f.bias_t = pr.bias.data();
  } else {
    f.decay = pr.decay[0];
    f.gain = pr.gain[0];
    f.bias = pr.bias[0];
  }
  f.spikes = r.spikes.data();
  f.v_final = r.v_final.data();
  f.checkpoints = r.ckpt.data();
  f.T = T;
  f.N = N;
  f.S = c.per_channel ? c.S : 1;
  f.C = c.per_channel ? c.C : 1;
  f.chunk = c.chunk;
  f.v_threshold = pr.vth;
  f.v_reset = pr.vreset;
  f.v_init_value = pr.v_init_value;
  f.hard_reset = c.hard;
  f.strict = c.strict;
  f.training = true;
  f.store_final_state = true;
  f.store_v_seq = c.vseq;
  f.v_seq = c.vseq ? r.v_seq.data() : nullptr;
  if (parallel_driver) {
    snnk::leaky_fwd_cpu(f);
  } else {
    // blocks in reverse order, one call each: blocks must be independent
    for (int64_t blk = snnk::leaky_cpu_num_blocks(N) - 1; blk >= 0; --blk) snnk::leaky_fwd_cpu_blocks(f, blk, blk + 1);
  }

  r.grad_x.assign(T * N, -7.0f);
  r.grad_v0.assign(N, -7.0f);
  r.g_decay.assign(N, -7.0f);
  r.g_gain.assign(N, -7.0f);
  r.g_bias.assign(N, -7.0f);
  snnk::LeakyBwdParams b;
  b.grad_spikes = pr.gs.data();
  b.grad_v_final = c.has_gvf ? pr.gvf.data() : nullptr;
  b.has_grad_v_final = c.has_gvf;
  b.x = pr.x.data();
  b.v_init = f.v_init;
  b.has_v_init = c.has_v0;
  b.checkpoints = r.ckpt.data();
  b.decay_t = f.decay_t;
  b.gain_t = f.gain_t;
  b.bias_t = f.bias_t;
  b.grad_x = r.grad_x.data();
  b.grad_v_init = r.grad_v0.data();
  b.grad_decay = r.g_decay.data();
  b.grad_gain = r.g_gain.data();
  b.grad_bias = r.g_bias.data();
  b.T = T;
  b.N = N;
  b.S = f.S;
  b.C = f.C;
  b.chunk = c.chunk;
  b.decay = f.decay;
  b.gain = f.gain;
  b.bias = f.bias;
  b.v_threshold = pr.vth;
  b.v_reset = pr.vreset;
  b.v_init_value = pr.v_init_value;
  b.surrogate_param = pr.sg_param;
  b.surrogate_id = c.sg;
  b.hard_reset = c.hard;
  b.strict = c.strict;
  b.detach_reset = c.detach;
  b.need_grad_v_init = true;
  b.need_grad_decay = b.need_grad_gain = b.need_grad_bias = c.coefficient_grads;
  b.has_grad_v_seq = c.vseq;
  b.grad_v_seq = c.vseq ? pr.gvs.data() : nullptr;
  if (parallel_driver) {
    snnk::leaky_bwd_cpu(b);
  } else {
    for (int64_t blk = snnk::leaky_cpu_num_blocks(N) - 1; blk >= 0; --blk) snnk::leaky_bwd_cpu_blocks(b, blk, blk + 1);
  }
  return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (bits(a[i]) != bits(b[i])) return false;
  return true;
}

// max |a - b| relative to the largest |b|
double max_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double m = 0.0, scale = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return m / scale;
}

void test_leaky() {
  int cases = 0, bwd_exact = 0;
  uint32_t seed = 1;
  for (int64_t T : {1, 3, 4, 8, 12, 13, 16}) {  // 4, 8, 12, 16: whole groups of 4 or 8 (the register path)
    for (int64_t chunk : {1, 2, 3, 5, 8, 20}) {
      for (int sg = 0; sg < snnk::kNumSurrogates; ++sg) {
        for (int flags = 0; flags < 64; flags += 1 + (seed % 3)) {
          Config c;
          c.T = T;
          c.B = 3;
          c.C = 5;
          c.S = 71;  // N = 1065: several blocks, a partial last one with a partial tile
          c.chunk = chunk;
          c.sg = sg;
          c.hard = flags & 1;
          c.strict = flags & 2;
          c.detach = flags & 4;
          c.has_v0 = flags & 8;
          c.per_channel = flags & 16;
          c.has_gvf = flags & 32;
          c.coefficient_grads = seed % 3 != 0;
          c.vseq = seed % 4 == 1;
          const Problem pr = make_problem(c, seed++);
          const RefResult ref = reference(pr);
          snnk::leaky_cpu_set_isa(snnk::LeakyCpuIsa::kAuto);
          const CoreResult got = run_core(pr, seed % 2 == 0);
          // the baseline instruction set must give the same bits as the widest one
          snnk::leaky_cpu_set_isa(snnk::LeakyCpuIsa::kBaseline);
          const CoreResult base = run_core(pr, seed % 2 == 1);
          snnk::leaky_cpu_set_isa(snnk::LeakyCpuIsa::kAuto);
          EXPECT(same_bits(got.spikes, base.spikes) && same_bits(got.ckpt, base.ckpt) &&
                     same_bits(got.v_seq, base.v_seq) && same_bits(got.grad_x, base.grad_x) &&
                     same_bits(got.grad_v0, base.grad_v0) && same_bits(got.g_decay, base.g_decay) &&
                     same_bits(got.g_gain, base.g_gain) && same_bits(got.g_bias, base.g_bias),
                 "T" + std::to_string(T) + " chunk" + std::to_string(chunk) + ": " + snnk::leaky_cpu_isa_name() +
                     " and baseline results differ");
          const std::string name = "T" + std::to_string(T) + " chunk" + std::to_string(chunk) + " sg" +
                                   std::to_string(sg) + " flags" + std::to_string(flags) + (c.vseq ? " v_seq" : "");
          EXPECT(same_bits(got.spikes, ref.spikes), name + ": spikes differ from the reference");
          EXPECT(same_bits(got.v_final, ref.v_final), name + ": v_final differs from the reference");
          std::vector<float> want_ckpt;
          for (int64_t i = 1; i * chunk < T; ++i)
            want_ckpt.insert(want_ckpt.end(), ref.states.begin() + i * chunk * pr.N,
                             ref.states.begin() + (i * chunk + 1) * pr.N);
          EXPECT(same_bits(got.ckpt, want_ckpt), name + ": checkpoints differ from the reference states");
          const std::vector<float> want_v_seq =
              c.vseq ? std::vector<float>(ref.states.begin() + pr.N, ref.states.end()) : std::vector<float>();
          EXPECT(same_bits(got.v_seq, want_v_seq), name + ": v_seq differs from the reference states");
          // the coefficient gradients are compared where they were asked for (zeros otherwise)
          const bool coef = c.coefficient_grads;
          const bool bwd_same = same_bits(got.grad_x, ref.grad_x) && same_bits(got.grad_v0, ref.grad_v0) &&
                                (!coef || (same_bits(got.g_decay, ref.g_decay) && same_bits(got.g_gain, ref.g_gain) &&
                                           same_bits(got.g_bias, ref.g_bias)));
          if (!uses_exp(sg)) {
            // same operations in the same order: the backward is exact too
            EXPECT(bwd_same, name + ": backward differs from the reference");
          } else {
            // the kernels' exp differs from libm's by up to an ulp
            double e = std::max(max_err(got.grad_x, ref.grad_x), max_err(got.grad_v0, ref.grad_v0));
            if (coef) {
              e = std::max({e, max_err(got.g_decay, ref.g_decay), max_err(got.g_gain, ref.g_gain),
                            max_err(got.g_bias, ref.g_bias)});
            }
            EXPECT(e < 1e-5, name + ": backward error " + std::to_string(e) + " of the largest value");
          }
          bwd_exact += bwd_same;
          ++cases;
        }
      }
    }
  }
  std::printf("leaky (%s and baseline): %d cases; backward bit-exact in %d (all but the exp surrogates' must be)\n",
              snnk::leaky_cpu_isa_name(), cases, bwd_exact);
}

// Equal values, NaN counting as equal to NaN (the payload of a NaN is not part of the contract).
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(bits(a[i]) == bits(b[i]) || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

// +inf / -inf / NaN inputs at several steps, on the register-blocked forward (runs of whole tiles that share a
// decay, groups of 8 and 4 steps), the per-step forward (tiles across channels, T = 13's last 5 steps) and the
// backward, IF (decay 1) and leaking neurons, and per-channel decays of both kinds in one call (runs with and
// without the (v - v) term side by side): the scalar reference's values, NaN where it has NaN.
void test_nonfinite() {
  int cases = 0;
  uint32_t seed = 1000;
  for (int64_t T : {4, 8, 12, 13}) {
    for (int flags = 0; flags < 64; ++flags) {
      if ((flags & 32) && (!(flags & 8) || (flags & 16))) continue;  // mixed channels: per-channel, not all IF
      Config c;
      c.T = T;
      c.B = 2;
      c.C = 3;
      c.S = 40;  // N = 240: 15 whole tiles of 16
      c.chunk = 8;
      c.sg = flags % 3;
      c.hard = flags & 1;
      c.strict = false;
      c.detach = flags & 2;
      c.has_v0 = flags & 4;
      c.per_channel = flags & 8;
      c.has_gvf = true;
      Problem pr = make_problem(c, seed++);
      if (flags & 16) {  // IF
        for (auto& d : pr.decay) d = 1.0f;
      }
      if (flags & 32) pr.decay[1] = 1.0f;  // channel 1 IF, the others leaking
      const float values[3] = {INFINITY, -INFINITY, NAN};
      for (int64_t n = 0; n < pr.N; n += 7) pr.x[((n / 7) % T) * pr.N + n] = values[(n / 7) % 3];
      const RefResult ref = reference(pr);
      for (snnk::LeakyCpuIsa isa : {snnk::LeakyCpuIsa::kAuto, snnk::LeakyCpuIsa::kBaseline}) {
        snnk::leaky_cpu_set_isa(isa);
        const CoreResult got = run_core(pr, true);
        const std::string name = "non-finite T" + std::to_string(T) + " flags" + std::to_string(flags);
        EXPECT(same_values(got.spikes, ref.spikes), name + ": spikes differ from the reference");
        EXPECT(same_values(got.v_final, ref.v_final), name + ": v_final differs from the reference");
        bool nan_pattern = got.grad_x.size() == ref.grad_x.size();
        for (size_t i = 0; nan_pattern && i < got.grad_x.size(); ++i)
          nan_pattern = std::isnan(got.grad_x[i]) == std::isnan(ref.grad_x[i]);
        EXPECT(nan_pattern, name + ": grad_x NaN elsewhere than the reference's");
      }
      snnk::leaky_cpu_set_isa(snnk::LeakyCpuIsa::kAuto);
      ++cases;
    }
  }
  std::printf("non-finite inputs: %d cases\n", cases);
}

// fp16: every half bit pattern converts to the float _Float16 gives and back; random floats round like it.
void test_half() {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 ref;
    const uint16_t hb = static_cast<uint16_t>(h);
    std::memcpy(&ref, &hb, 2);
    const float want = static_cast<float>(ref);
    const float got = snnk::half_bits_to_float_sw(h);
    if (std::isnan(want)) {
      EXPECT(std::isnan(got), "half->float NaN " + std::to_string(h));
      continue;
    }
    EXPECT(bits(got) == bits(want), "half->float " + std::to_string(h));
    EXPECT(snnk::float_to_half_bits_sw(want) == hb, "half round trip " + std::to_string(h));
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t u = rng();
    const float f = from_bits(u);
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    EXPECT(snnk::float_to_half_bits_sw(f) == want, "float->half " + std::to_string(u));
  }
  // round to nearest even exactly at ties
  for (uint32_t e = 100; e < 145; ++e)
    for (uint32_t m = 0; m < (1u << 23); m += 4093) {
      const float f = from_bits((e << 23) | m | 0xfffu);
      const _Float16 ref = static_cast<_Float16>(f);
      uint16_t want;
      std::memcpy(&want, &ref, 2);
      EXPECT(snnk::float_to_half_bits_sw(f) == want, "float->half tie region");
    }
}

// bf16: round to nearest even, checked against a rounding done in double.
void test_bf16() {
  std::mt19937 rng(11);
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t u = (i < 65536) ? ((static_cast<uint32_t>(i) << 16) | 0x8000u) : rng();  // ties first
    const float f = from_bits(u);
    if (std::isnan(f) || std::isinf(f)) continue;
    const uint32_t lo = u >> 16, hi = lo + 1;
    // the step above the largest finite bf16 is infinity, which rounding treats as 2^128
    const double hi_value = (hi & 0x7fffu) == 0x7f80u ? std::copysign(std::ldexp(1.0, 128), f) : from_bits(hi << 16);
    const double dl = std::fabs(double(f) - double(from_bits(lo << 16)));
    const double dh = std::fabs(double(f) - hi_value);
    const uint32_t want = dl < dh ? lo : (dh < dl ? hi : ((lo & 1u) ? hi : lo));
    EXPECT(snnk::float_to_bf16_bits_sw(f) == want, "float->bf16 " + std::to_string(u));
    EXPECT(bits(snnk::bf16_bits_to_float_sw(want)) == (want << 16), "bf16->float");
  }
  EXPECT(std::isnan(snnk::bf16_bits_to_float_sw(snnk::float_to_bf16_bits_sw(std::nanf("")))), "bf16 NaN");
}

// Host exp (used by the Sigmoid surrogate): within 2 ulp of exp in double over its range.
void test_exp() {
  double worst = 0.0;
  for (float x = -87.0f; x < 88.7f; x += 0.0137f) {
    const double want = std::exp(double(x));
    const float got = snnk::exp_f32(x);
    const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
    worst = std::max(worst, std::fabs(double(got) - want) / ulp);
  }
  EXPECT(worst <= 2.0, "exp_f32 error " + std::to_string(worst) + " ulp");
  EXPECT(std::isinf(snnk::exp_f32(100.0f)) && snnk::exp_f32(-200.0f) == 0.0f && std::isnan(snnk::exp_f32(NAN)),
         "exp_f32 range ends");
  std::printf("exp_f32: max error %.2f ulp\n", worst);
}

}  // namespace

int main() {
  test_leaky();
  test_nonfinite();
  test_half();
  test_bf16();
  test_exp();
  if (g_failures) {
    std::printf("%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("all passed\n");
  return 0;
}
