// The CUDA kernels of csrc/leaky/leaky_kernel.cuh run on the host (CTest, no GPU or nvcc needed): a small
// shim maps __global__ / blockIdx / threadIdx to plain C++ and runs every thread of the grid one after the
// other (the kernels use no shared memory or barriers, so this is a valid schedule). Checked against the
// CPU core (itself checked against a scalar reference by test_leaky_cpu): the forward bit for bit, the
// backward bit for bit too (same per-element functions; on the host both use the same exp), for the
// launch configurations of leaky_launch_impl.cuh (wide VEC and one neuron per thread, the ahead-of-time
// static flags) and for fully static / fully run-time flags, surrogate id at run time, and chunk lengths
// longer than the kernel's CHUNK (walked in pieces); with and without the membrane sequence (v_seq out,
// dL/dv_seq in: the launcher's run-time-surrogate instances).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

// ---- CUDA shim ----
struct SnnkDim3 {
  unsigned x = 0, y = 0, z = 0;
};
static SnnkDim3 blockIdx, threadIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)

#include "leaky/leaky_cpu.h"
#include "leaky/leaky_kernel.cuh"
#include "snnkernels/dispatch.h"

namespace {

int g_failures = 0;
#define EXPECT(cond, what)                                          \
  do {                                                              \
    if (!(cond) && ++g_failures <= 20) std::printf("FAIL: %s\n", std::string(what).c_str()); \
  } while (0)

template <typename F>
void launch(int64_t n, int vec, unsigned threads, F&& kernel) {
  const int64_t work = (n + vec - 1) / vec;
  const unsigned blocks = static_cast<unsigned>((work + threads - 1) / threads);
  blockDim.x = threads;
  for (unsigned b = 0; b < blocks; ++b) {
    blockIdx.x = b;
    for (unsigned t = 0; t < threads; ++t) {
      threadIdx.x = t;
      kernel();
    }
  }
}

// 64-byte aligned buffer (the wide path moves 16-byte packs)
template <typename E>
struct AlignedBuf {
  std::vector<E> storage;
  E* p = nullptr;
  size_t n = 0;
  explicit AlignedBuf(size_t count = 0, E fill = E()) : storage(count + 64, fill), n(count) {
    p = storage.data();
    while (reinterpret_cast<uintptr_t>(p) % 64) ++p;
  }
  bool same(const AlignedBuf& o) const { return n == o.n && std::memcmp(p, o.p, n * sizeof(E)) == 0; }
};
using Buf = AlignedBuf<float>;

float poison() { return -7.0f; }

struct Case {
  int64_t T, B, C, S, chunk;
  bool hard, strict, detach, has_v0, per_channel, has_gvf;
  int sg;
  bool vseq = false;
};

// Which template configuration runs the kernel.
enum class Mode { kAot, kAllStatic, kAllRuntime };

template <int CHUNK, int VEC, unsigned MASK, unsigned FLAGS, typename scalar_t = float>
void run_fwd(const Case& c, const snnk::LeakyFwdParams& p, unsigned flags) {
  launch(p.N, VEC, 64, [&] {
    snnk::leaky_fwd_kernel<scalar_t, CHUNK, VEC, MASK, FLAGS>(
        static_cast<const scalar_t*>(p.x), p.v_init, p.decay_t, p.gain_t, p.bias_t, static_cast<scalar_t*>(p.spikes),
        p.v_final, p.checkpoints, p.v_seq, p.T, p.N, p.S, p.C, SNNK_LEAKY_FWD_KERNEL_SCALAR_ARGS(p), p.chunk,
        flags);
  });
  (void)c;
}

template <int SG, int CHUNK, int VEC, unsigned MASK, unsigned FLAGS, typename scalar_t = float>
void run_bwd(const snnk::LeakyBwdParams& p, unsigned flags) {
  launch(p.N, VEC, 64, [&] {
    snnk::leaky_bwd_kernel<scalar_t, SG, CHUNK, VEC, MASK, FLAGS>(
        static_cast<const scalar_t*>(p.grad_spikes), p.grad_v_final, static_cast<const scalar_t*>(p.x), p.v_init,
        p.checkpoints, p.decay_t, p.gain_t, p.bias_t, static_cast<scalar_t*>(p.grad_x), p.grad_v_init, p.grad_decay,
        p.grad_gain, p.grad_bias, p.grad_v_seq, p.T, p.N, p.S, p.C, SNNK_LEAKY_BWD_KERNEL_SCALAR_ARGS(p), p.chunk,
        flags);
  });
}

void check_case(const Case& c, uint32_t seed, Mode mode, bool wide) {
  const int64_t N = c.B * c.C * c.S, T = c.T;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.45f, 1.2f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  Buf x(T * N), gs(T * N), v0(N), gvf(N), gvs(T * N), decay(c.C), gain(c.C), bias(c.C);
  for (size_t i = 0; i < x.n; ++i) x.p[i] = i < 9 ? 1.0f : nd(rng);
  for (size_t i = 0; i < gvs.n; ++i) gvs.p[i] = nd(rng);
  for (size_t i = 0; i < gs.n; ++i) gs.p[i] = nd(rng);
  for (size_t i = 0; i < v0.n; ++i) v0.p[i] = 0.5f * (ud(rng) - 0.5f);
  for (size_t i = 0; i < gvf.n; ++i) gvf.p[i] = nd(rng);
  for (int64_t i = 0; i < c.C; ++i) {
    decay.p[i] = 0.4f + 0.5f * ud(rng);
    gain.p[i] = 0.5f + ud(rng);
    bias.p[i] = 0.1f * (ud(rng) - 0.5f);
  }
  const float sg_params[snnk::kNumSurrogates] = {2.0f, 4.0f, 1.0f, 1.0f, 1.0f, 2.0f, 1.0f, 2.0f};
  const int64_t n_ckpt = snnk::leaky_num_checkpoints(T, c.chunk);

  snnk::LeakyFwdParams f;
  f.x = x.p;
  f.v_init = c.has_v0 ? v0.p : nullptr;
  f.has_v_init = c.has_v0;
  if (c.per_channel) {
    f.decay_t = decay.p;
    f.gain_t = gain.p;
    f.bias_t = bias.p;
  } else {
    f.decay = 0.5f;
    f.gain = 0.9f;
    f.bias = 0.02f;
  }
  f.T = T;
  f.N = N;
  f.S = c.per_channel ? c.S : 1;
  f.C = c.per_channel ? c.C : 1;
  f.chunk = c.chunk;
  f.v_threshold = 1.0f;
  f.v_reset = c.hard ? -0.1f : 0.0f;
  f.v_init_value = 0.2f;
  f.hard_reset = c.hard;
  f.strict = c.strict;
  f.training = true;
  f.store_final_state = true;
  f.store_v_seq = c.vseq;

  // CPU core (reference for this test)
  Buf s_ref(T * N, -7.f), vf_ref(N, -7.f), ck_ref(n_ckpt * N, -7.f), vs_ref(c.vseq ? T * N : 0, -7.f);
  snnk::LeakyFwdParams fr = f;
  fr.spikes = s_ref.p;
  fr.v_final = vf_ref.p;
  fr.checkpoints = ck_ref.p;
  fr.v_seq = c.vseq ? vs_ref.p : nullptr;
  snnk::leaky_fwd_cpu(fr);

  Buf s(T * N, -7.f), vf(N, -7.f), ck(n_ckpt * N, -7.f), vs(c.vseq ? T * N : 0, -7.f);
  snnk::LeakyFwdParams fk = f;
  fk.spikes = s.p;
  fk.v_final = vf.p;
  fk.checkpoints = ck.p;
  fk.v_seq = c.vseq ? vs.p : nullptr;
  const unsigned fflags = f.flags() | snnk::kVectorized;
  using namespace snnk;
  if (mode == Mode::kAot) {
    // as leaky_launch_impl.cuh: hard_reset, store_v_seq and the width fixed
    constexpr unsigned M = kHardReset | kVectorized | kStoreVSeq;
    SNNK_BOOL_SWITCH(c.hard, HARD, [&] {
      SNNK_BOOL_SWITCH(c.vseq, VSEQ, [&] {
        constexpr unsigned F = (HARD ? kHardReset : 0u) | kVectorized | (VSEQ ? kStoreVSeq : 0u);
        if (wide) run_fwd<8, 4, M, F>(c, fk, fflags);
        else run_fwd<8, 1, M, F>(c, fk, fflags);
      });
    });
  } else if (mode == Mode::kAllRuntime) {
    // nothing static, not even the vector width's fast path: per-element bound checks
    run_fwd<3, 4, 0u, 0u>(c, fk, f.flags());
  } else {
    // every option fixed at compile time for one configuration (hard, v_init, per-channel, training, final)
    if (!(c.hard && c.has_v0 && c.per_channel && !c.strict) || !wide) return;
    constexpr unsigned M = 0x7fffu;
    constexpr unsigned F = kHasVInit | kDecayT | kGainT | kBiasT | kHardReset | kTraining | kStoreFinal | kVectorized;
    run_fwd<4, 2, M, F>(c, fk, c.vseq ? kStoreVSeq : 0u);  // bits 15-16 stay run-time flags
  }
  const std::string name = "T" + std::to_string(T) + " chunk" + std::to_string(c.chunk) + " sg" + std::to_string(c.sg) +
                           (c.hard ? " hard" : " soft") + (c.strict ? " strict" : "") + (c.detach ? " detach" : "") +
                           (c.has_v0 ? " v0" : "") + (c.per_channel ? " per-channel" : "") +
                           (c.has_gvf ? " gvf" : "") + (wide ? " wide" : " narrow") + " mode" +
                           std::to_string(static_cast<int>(mode));
  EXPECT(s.same(s_ref), name + ": kernel spikes differ from the CPU core");
  EXPECT(vf.same(vf_ref), name + ": kernel v_final differs");
  EXPECT(ck.same(ck_ref), name + ": kernel checkpoints differ");
  EXPECT(vs.same(vs_ref), name + ": kernel v_seq differs");

  // backward from the same checkpoints
  snnk::LeakyBwdParams b;
  b.grad_spikes = gs.p;
  b.grad_v_final = c.has_gvf ? gvf.p : nullptr;
  b.has_grad_v_final = c.has_gvf;
  b.x = x.p;
  b.v_init = f.v_init;
  b.has_v_init = c.has_v0;
  b.checkpoints = ck_ref.p;
  b.decay_t = f.decay_t;
  b.gain_t = f.gain_t;
  b.bias_t = f.bias_t;
  b.T = T;
  b.N = N;
  b.S = f.S;
  b.C = f.C;
  b.chunk = c.chunk;
  b.decay = f.decay;
  b.gain = f.gain;
  b.bias = f.bias;
  b.v_threshold = f.v_threshold;
  b.v_reset = f.v_reset;
  b.v_init_value = f.v_init_value;
  b.surrogate_param = sg_params[c.sg];
  b.surrogate_id = c.sg;
  b.hard_reset = c.hard;
  b.strict = c.strict;
  b.detach_reset = c.detach;
  b.need_grad_v_init = b.need_grad_decay = b.need_grad_gain = b.need_grad_bias = true;
  b.has_grad_v_seq = c.vseq;
  b.grad_v_seq = c.vseq ? gvs.p : nullptr;
  Buf gx_ref(T * N, -7.f), gv_ref(N, -7.f), gd_ref(N, -7.f), gg_ref(N, -7.f), gb_ref(N, -7.f);
  snnk::LeakyBwdParams br = b;
  br.grad_x = gx_ref.p;
  br.grad_v_init = gv_ref.p;
  br.grad_decay = gd_ref.p;
  br.grad_gain = gg_ref.p;
  br.grad_bias = gb_ref.p;
  snnk::leaky_bwd_cpu(br);
  Buf gx(T * N, -7.f), gv(N, -7.f), gd(N, -7.f), gg(N, -7.f), gb(N, -7.f);
  snnk::LeakyBwdParams bk = b;
  bk.grad_x = gx.p;
  bk.grad_v_init = gv.p;
  bk.grad_decay = gd.p;
  bk.grad_gain = gg.p;
  bk.grad_bias = gb.p;
  const unsigned bflags = b.flags() | kVectorized;
  if (mode == Mode::kAot && c.vseq) {
    // as leaky_launch_impl.cuh: dL/dv_seq runs the run-time-surrogate instances
    constexpr unsigned M = kHardReset | kDetachReset | kVectorized | kHasGradVSeq;
    SNNK_BOOL_SWITCH(c.hard, HARD, [&] {
      SNNK_BOOL_SWITCH(c.detach, DETACH, [&] {
        constexpr unsigned F = (HARD ? kHardReset : 0u) | (DETACH ? kDetachReset : 0u) | kVectorized | kHasGradVSeq;
        if (wide) run_bwd<-1, 8, 2, M, F>(bk, bflags);
        else run_bwd<-1, 8, 1, M, F>(bk, bflags);
      });
    });
  } else if (mode == Mode::kAot) {
    constexpr unsigned M = kHardReset | kDetachReset | kVectorized | kHasGradVSeq;
    SNNK_SURROGATE_SWITCH(c.sg, SG, [&] {
      SNNK_BOOL_SWITCH(c.hard, HARD, [&] {
        SNNK_BOOL_SWITCH(c.detach, DETACH, [&] {
          constexpr unsigned F = (HARD ? kHardReset : 0u) | (DETACH ? kDetachReset : 0u) | kVectorized;
          if (wide) run_bwd<SG, 8, 2, M, F>(bk, bflags);
          else run_bwd<SG, 8, 1, M, F>(bk, bflags);
        });
      });
    });
  } else if (mode == Mode::kAllRuntime) {
    run_bwd<-1, 3, 2, 0u, 0u>(bk, b.flags());  // CHUNK 3: chunks longer than 3 are walked in pieces
  } else {
    constexpr unsigned M = 0x7fffu;
    constexpr unsigned F = kHasVInit | kDecayT | kGainT | kBiasT | kHardReset | kStoreGradVInit | kNeedGradDecay |
                           kNeedGradGain | kNeedGradBias | kVectorized;
    if (c.has_gvf || c.detach) return;
    SNNK_SURROGATE_SWITCH(c.sg, SG, [&] { run_bwd<SG, 4, 2, M, F>(bk, c.vseq ? kHasGradVSeq : 0u); });
  }
  EXPECT(gx.same(gx_ref), name + ": kernel grad_x differs from the CPU core");
  EXPECT(gv.same(gv_ref), name + ": kernel grad_v_init differs");
  EXPECT(gd.same(gd_ref) && gg.same(gg_ref) && gb.same(gb_ref), name + ": kernel coefficient sums differ");
}


// fp16 / bf16: the ahead-of-time launch configurations (forward 8 neurons per thread, backward 2, or 1
// when narrow) against the CPU core on the same 16-bit data.
template <typename scalar_t>
void check_16bit(const Case& c, uint32_t seed, bool wide, snnk::ElementType dtype) {
  using namespace snnk;
  const int64_t N = c.B * c.C * c.S, T = c.T;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.45f, 1.2f);
  AlignedBuf<scalar_t> x(T * N), gs(T * N);
  for (size_t i = 0; i < x.n; ++i) x.p[i] = from_float<scalar_t>(i < 9 ? 1.0f : nd(rng));
  for (size_t i = 0; i < gs.n; ++i) gs.p[i] = from_float<scalar_t>(nd(rng));
  Buf v0(N);
  for (size_t i = 0; i < v0.n; ++i) v0.p[i] = 0.1f * nd(rng);
  const int64_t n_ckpt = leaky_num_checkpoints(T, c.chunk);
  LeakyFwdParams f;
  f.x = x.p;
  f.v_init = v0.p;
  f.has_v_init = c.has_v0;
  f.decay = 0.6f;
  f.gain = 0.8f;
  f.T = T;
  f.N = N;
  f.chunk = c.chunk;
  f.hard_reset = c.hard;
  f.strict = c.strict;
  f.training = true;
  f.store_final_state = true;
  f.dtype = dtype;
  AlignedBuf<scalar_t> s_ref(T * N), s(T * N);
  Buf vf_ref(N, poison()), vf(N, poison()), ck(n_ckpt * N, poison()), ck2(n_ckpt * N, poison());
  LeakyFwdParams fr = f, fk = f;
  fr.spikes = s_ref.p;
  fr.v_final = vf_ref.p;
  fr.checkpoints = ck.p;
  leaky_fwd_cpu(fr);
  fk.spikes = s.p;
  fk.v_final = vf.p;
  fk.checkpoints = ck2.p;
  constexpr unsigned M = kHardReset | kVectorized;
  SNNK_BOOL_SWITCH(c.hard, HARD, [&] {
    constexpr unsigned F = (HARD ? kHardReset : 0u) | kVectorized;
    if (wide) run_fwd<8, 8, M, F, scalar_t>(c, fk, f.flags() | kVectorized);
    else run_fwd<8, 1, M, F, scalar_t>(c, fk, f.flags() | kVectorized);
  });
  const std::string name = std::string(dtype == ElementType::kFloat16 ? "fp16" : "bf16") + " T" + std::to_string(T) +
                           " chunk" + std::to_string(c.chunk) + " sg" + std::to_string(c.sg) + (wide ? " wide" : " narrow");
  EXPECT(s.same(s_ref) && vf.same(vf_ref) && ck2.same(ck), name + ": kernel forward differs from the CPU core");

  LeakyBwdParams b;
  b.grad_spikes = gs.p;
  b.x = x.p;
  b.v_init = v0.p;
  b.has_v_init = c.has_v0;
  b.checkpoints = ck.p;
  b.decay = f.decay;
  b.gain = f.gain;
  b.T = T;
  b.N = N;
  b.chunk = c.chunk;
  b.surrogate_id = c.sg;
  b.surrogate_param = 1.0f;
  b.hard_reset = c.hard;
  b.strict = c.strict;
  b.detach_reset = c.detach;
  b.need_grad_v_init = b.need_grad_decay = true;
  b.dtype = dtype;
  AlignedBuf<scalar_t> gx_ref(T * N), gx(T * N);
  Buf gv_ref(N, poison()), gv(N, poison()), gd_ref(N, poison()), gd(N, poison());
  LeakyBwdParams br = b, bk = b;
  br.grad_x = gx_ref.p;
  br.grad_v_init = gv_ref.p;
  br.grad_decay = gd_ref.p;
  leaky_bwd_cpu(br);
  bk.grad_x = gx.p;
  bk.grad_v_init = gv.p;
  bk.grad_decay = gd.p;
  SNNK_SURROGATE_SWITCH(c.sg, SG, [&] {
    SNNK_BOOL_SWITCH(c.hard, HARD, [&] {
      SNNK_BOOL_SWITCH(c.detach, DETACH, [&] {
        constexpr unsigned MB = kHardReset | kDetachReset | kVectorized;
        constexpr unsigned F = (HARD ? kHardReset : 0u) | (DETACH ? kDetachReset : 0u) | kVectorized;
        if (wide) run_bwd<SG, 8, 2, MB, F, scalar_t>(bk, b.flags() | kVectorized);
        else run_bwd<SG, 8, 1, MB, F, scalar_t>(bk, b.flags() | kVectorized);
      });
    });
  });
  EXPECT(gx.same(gx_ref) && gv.same(gv_ref) && gd.same(gd_ref), name + ": kernel backward differs from the CPU core");
}

}  // namespace

// The kernels' division without the 64-bit subroutine: both its paths (32-bit, and shift-subtract above 2^32)
// against the host's operator /.
void check_udiv64() {
  std::mt19937_64 gen(11);
  for (int i = 0; i < 20000; ++i) {
    const int bits_a = 1 + i % 64, bits_b = 1 + (i / 64) % 64;
    const unsigned long long a = gen() >> (64 - bits_a);
    const unsigned long long b = (gen() >> (64 - bits_b)) | 1ull;
    EXPECT(snnk::leaky_detail::udiv64(a, b) == a / b, "udiv64(" + std::to_string(a) + ", " + std::to_string(b) + ")");
  }
  EXPECT(snnk::leaky_detail::udiv64(~0ull, 1) == ~0ull, "udiv64(2^64 - 1, 1)");
  EXPECT(snnk::leaky_detail::udiv64(1ull << 32, 1ull << 32) == 1, "udiv64(2^32, 2^32)");
}

int main() {
  check_udiv64();
  int n = 0;
  uint32_t seed = 3;
  for (int64_t T : {1, 5, 8, 13}) {
    for (int64_t chunk : {1, 3, 8, 11}) {
      for (int sg = 0; sg < snnk::kNumSurrogates; ++sg) {
        for (int flags = 0; flags < 64; flags += 3 + seed % 5) {
          Case c{T, 2, 3, 28, chunk, bool(flags & 1), bool(flags & 2), bool(flags & 4), bool(flags & 8),
                 bool(flags & 16), bool(flags & 32), sg, seed % 3 == 1};  // N = 168: divisible by 4 (wide path)
          for (Mode m : {Mode::kAot, Mode::kAllStatic, Mode::kAllRuntime}) {
            check_case(c, seed, m, true);
            check_case(c, seed, m, false);
          }
          Case odd = c;  // N = 105: the launcher's one-neuron-per-thread case, runtime bound checks
          odd.S = 7;
          odd.C = 3;
          odd.B = 5;
          check_case(odd, seed + 1, Mode::kAot, false);
          check_case(odd, seed + 1, Mode::kAllRuntime, false);
          if (flags % 4 == 0) {
            check_16bit<snnk::half_t>(c, seed, true, snnk::ElementType::kFloat16);
            check_16bit<snnk::bf16_t>(odd, seed, false, snnk::ElementType::kBFloat16);
            check_16bit<snnk::bf16_t>(c, seed, true, snnk::ElementType::kBFloat16);
          }
          ++seed;
          ++n;
        }
      }
    }
  }
  std::printf("kernel emulation: %d configurations x launch modes\n", n);
  if (g_failures) {
    std::printf("%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("all passed\n");
  return 0;
}
