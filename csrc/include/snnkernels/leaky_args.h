// Generated from snnkernels/ops/leaky_settings.py by scripts/generate_leaky_args.py: do not edit.
// The leaky ops' arguments in C++ (docs/neuron.md "The neuron's settings"): the schemas
// (registration.cpp), the entry points' parameter lists and calls (leaky_api*.cpp), the copy of each
// scalar setting into the params struct of the passes that read it, the option bits (leaky_flags.h),
// the params structs' setting members and flags() (leaky_params.h), and the CUDA kernels' value
// parameters with the launches' arguments (leaky_kernel.cuh, leaky_launch_impl.cuh; CuPy sends the same
// list). Macros only: torch-free and NVRTC-safe.
#pragma once

#define SNNK_LEAKY_FWD_SCHEMA "(Tensor x, Tensor? v_init, Tensor? decay_t, Tensor? gain_t, Tensor? bias_t, float decay, float gain, float bias, float v_threshold, float v_reset, float v_init_value, bool hard_reset, bool strict, bool detach_reset, int surrogate_id, float surrogate_param, bool training, bool store_final_state, int chunk, bool store_v_seq=False) -> (Tensor spikes, Tensor v_final, Tensor checkpoints, Tensor v_seq)"

#define SNNK_LEAKY_BWD_SCHEMA "(Tensor grad_spikes, Tensor? grad_v_final, Tensor x, Tensor? v_init, Tensor checkpoints, Tensor? decay_t, Tensor? gain_t, Tensor? bias_t, float decay, float gain, float bias, float v_threshold, float v_reset, float v_init_value, bool hard_reset, bool strict, bool detach_reset, int surrogate_id, float surrogate_param, int chunk, bool need_grad_v_init, bool need_grad_decay, bool need_grad_gain, bool need_grad_bias, Tensor? grad_v_seq=None) -> (Tensor grad_x, Tensor grad_v_init, Tensor grad_decay, Tensor grad_gain, Tensor grad_bias)"

#define SNNK_LEAKY_FWD_PARAMS \
    const at::Tensor& x, \
    const std::optional<at::Tensor>& v_init, \
    const std::optional<at::Tensor>& decay_t, \
    const std::optional<at::Tensor>& gain_t, \
    const std::optional<at::Tensor>& bias_t, \
    double decay, \
    double gain, \
    double bias, \
    double v_threshold, \
    double v_reset, \
    double v_init_value, \
    bool hard_reset, \
    bool strict, \
    bool detach_reset, \
    int64_t surrogate_id, \
    double surrogate_param, \
    bool training, \
    bool store_final_state, \
    int64_t chunk, \
    bool store_v_seq

#define SNNK_LEAKY_FWD_ARGS \
    x, \
    v_init, \
    decay_t, \
    gain_t, \
    bias_t, \
    decay, \
    gain, \
    bias, \
    v_threshold, \
    v_reset, \
    v_init_value, \
    hard_reset, \
    strict, \
    detach_reset, \
    surrogate_id, \
    surrogate_param, \
    training, \
    store_final_state, \
    chunk, \
    store_v_seq

#define SNNK_LEAKY_FWD_FILL_SCALARS(p) \
    (p).decay = static_cast<float>(decay); \
    (p).gain = static_cast<float>(gain); \
    (p).bias = static_cast<float>(bias); \
    (p).v_threshold = static_cast<float>(v_threshold); \
    (p).v_reset = static_cast<float>(v_reset); \
    (p).v_init_value = static_cast<float>(v_init_value); \
    (p).hard_reset = hard_reset; \
    (p).strict = strict; \
    (p).training = training; \
    (p).store_final_state = store_final_state; \
    (p).store_v_seq = store_v_seq;

#define SNNK_LEAKY_FWD_UNREAD \
    (void)detach_reset; \
    (void)surrogate_id; \
    (void)surrogate_param;

#define SNNK_LEAKY_FWD_FLAGS \
    (has_v_init ? kHasVInit : 0u) | \
    (decay_t ? kDecayT : 0u) | \
    (gain_t ? kGainT : 0u) | \
    (bias_t ? kBiasT : 0u) | \
    (hard_reset ? kHardReset : 0u) | \
    (strict ? kStrict : 0u) | \
    (training ? kTraining : 0u) | \
    (store_final_state ? kStoreFinal : 0u) | \
    (store_v_seq ? kStoreVSeq : 0u)

#define SNNK_LEAKY_FWD_SETTING_MEMBERS \
    bool has_v_init = false; \
    float decay = 1.f; \
    float gain = 1.f; \
    float bias = 0.f; \
    float v_threshold = 1.f; \
    float v_reset = 0.f; \
    float v_init_value = 0.f; \
    bool hard_reset = true; \
    bool strict = false; \
    bool training = false; \
    bool store_final_state = false; \
    bool store_v_seq = false;

#define SNNK_LEAKY_FWD_KERNEL_SCALARS \
    float decay, \
    float gain, \
    float bias, \
    float v_threshold, \
    float v_reset, \
    float v_init_value

#define SNNK_LEAKY_FWD_KERNEL_SCALAR_ARGS(p) \
    (p).decay, \
    (p).gain, \
    (p).bias, \
    (p).v_threshold, \
    (p).v_reset, \
    (p).v_init_value

#define SNNK_LEAKY_BWD_PARAMS \
    const at::Tensor& grad_spikes, \
    const std::optional<at::Tensor>& grad_v_final, \
    const at::Tensor& x, \
    const std::optional<at::Tensor>& v_init, \
    const at::Tensor& checkpoints, \
    const std::optional<at::Tensor>& decay_t, \
    const std::optional<at::Tensor>& gain_t, \
    const std::optional<at::Tensor>& bias_t, \
    double decay, \
    double gain, \
    double bias, \
    double v_threshold, \
    double v_reset, \
    double v_init_value, \
    bool hard_reset, \
    bool strict, \
    bool detach_reset, \
    int64_t surrogate_id, \
    double surrogate_param, \
    int64_t chunk, \
    bool need_grad_v_init, \
    bool need_grad_decay, \
    bool need_grad_gain, \
    bool need_grad_bias, \
    const std::optional<at::Tensor>& grad_v_seq

#define SNNK_LEAKY_BWD_ARGS \
    grad_spikes, \
    grad_v_final, \
    x, \
    v_init, \
    checkpoints, \
    decay_t, \
    gain_t, \
    bias_t, \
    decay, \
    gain, \
    bias, \
    v_threshold, \
    v_reset, \
    v_init_value, \
    hard_reset, \
    strict, \
    detach_reset, \
    surrogate_id, \
    surrogate_param, \
    chunk, \
    need_grad_v_init, \
    need_grad_decay, \
    need_grad_gain, \
    need_grad_bias, \
    grad_v_seq

#define SNNK_LEAKY_BWD_FILL_SCALARS(p) \
    (p).decay = static_cast<float>(decay); \
    (p).gain = static_cast<float>(gain); \
    (p).bias = static_cast<float>(bias); \
    (p).v_threshold = static_cast<float>(v_threshold); \
    (p).v_reset = static_cast<float>(v_reset); \
    (p).v_init_value = static_cast<float>(v_init_value); \
    (p).hard_reset = hard_reset; \
    (p).strict = strict; \
    (p).detach_reset = detach_reset; \
    (p).surrogate_id = static_cast<int>(surrogate_id); \
    (p).surrogate_param = static_cast<float>(surrogate_param); \
    (p).need_grad_v_init = need_grad_v_init; \
    (p).need_grad_decay = need_grad_decay; \
    (p).need_grad_gain = need_grad_gain; \
    (p).need_grad_bias = need_grad_bias;

#define SNNK_LEAKY_BWD_UNREAD

#define SNNK_LEAKY_BWD_FLAGS \
    (has_grad_v_final ? kHasGradVFinal : 0u) | \
    (has_v_init ? kHasVInit : 0u) | \
    (decay_t ? kDecayT : 0u) | \
    (gain_t ? kGainT : 0u) | \
    (bias_t ? kBiasT : 0u) | \
    (hard_reset ? kHardReset : 0u) | \
    (strict ? kStrict : 0u) | \
    (detach_reset ? kDetachReset : 0u) | \
    (need_grad_v_init ? kStoreGradVInit : 0u) | \
    (need_grad_decay ? kNeedGradDecay : 0u) | \
    (need_grad_gain ? kNeedGradGain : 0u) | \
    (need_grad_bias ? kNeedGradBias : 0u) | \
    (has_grad_v_seq ? kHasGradVSeq : 0u)

#define SNNK_LEAKY_BWD_SETTING_MEMBERS \
    bool has_grad_v_final = false; \
    bool has_v_init = false; \
    float decay = 1.f; \
    float gain = 1.f; \
    float bias = 0.f; \
    float v_threshold = 1.f; \
    float v_reset = 0.f; \
    float v_init_value = 0.f; \
    bool hard_reset = true; \
    bool strict = false; \
    bool detach_reset = false; \
    int surrogate_id = 0; \
    float surrogate_param = 2.f; \
    bool need_grad_v_init = false; \
    bool need_grad_decay = false; \
    bool need_grad_gain = false; \
    bool need_grad_bias = false; \
    bool has_grad_v_seq = false;

#define SNNK_LEAKY_BWD_KERNEL_SCALARS \
    float decay, \
    float gain, \
    float bias, \
    float v_threshold, \
    float v_reset, \
    float v_init_value, \
    int surrogate_id, \
    float surrogate_param

#define SNNK_LEAKY_BWD_KERNEL_SCALAR_ARGS(p) \
    (p).decay, \
    (p).gain, \
    (p).bias, \
    (p).v_threshold, \
    (p).v_reset, \
    (p).v_init_value, \
    (p).surrogate_id, \
    (p).surrogate_param

#define SNNK_LEAKY_FLAG_ENUMERATORS \
    kHasVInit = 1u << 0, \
    kDecayT = 1u << 1, \
    kGainT = 1u << 2, \
    kBiasT = 1u << 3, \
    kHardReset = 1u << 4, \
    kStrict = 1u << 5, \
    kTraining = 1u << 6, \
    kStoreFinal = 1u << 7, \
    kDetachReset = 1u << 8, \
    kHasGradVFinal = 1u << 9, \
    kStoreGradVInit = 1u << 10, \
    kNeedGradDecay = 1u << 11, \
    kNeedGradGain = 1u << 12, \
    kNeedGradBias = 1u << 13, \
    kVectorized = 1u << 14, \
    kStoreVSeq = 1u << 15, \
    kHasGradVSeq = 1u << 16,
