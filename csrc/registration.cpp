// Schemas of the native (C++ CPU / CUDA) leaky-neuron ops, and the module init that lets the library be
// imported as the Python module `snnkernels._C`.
//
// The `snnkernels` namespace is shared with the ops the Python package defines (torch.library.define of
// the Triton ops), so this is a TORCH_LIBRARY_FRAGMENT, not a TORCH_LIBRARY (which would claim the whole
// namespace and clash). The schema strings are FWD_SCHEMA / BWD_SCHEMA of snnkernels/ops/leaky.py (generated
// from ops/leaky_settings.py), copied verbatim and compared by python_tests/ops/test_neuron_settings.py: the Python
// side registers the fake functions and autograd for these ops with
// register_leaky_autograd("snnkernels::leaky_fwd_native", "snnkernels::leaky_bwd_native").
// Implementations: leaky/leaky_api.cpp (CPU) and leaky/leaky_api_cuda.cpp (CUDA).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// `import snnkernels._C` loads this shared library (which runs the registrations below) and returns an
// empty module; the ops live in torch.ops.snnkernels.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY_FRAGMENT(snnkernels, m) {
  m.def(
      "leaky_fwd_native"
      "(Tensor x, Tensor? v_init, Tensor? decay_t, Tensor? gain_t, Tensor? bias_t, "
      "float decay, float gain, float bias, float v_threshold, float v_reset, float v_init_value, "
      "bool hard_reset, bool strict, bool detach_reset, int surrogate_id, float surrogate_param, "
      "bool training, bool store_final_state, int chunk, bool store_v_seq=False) "
      "-> (Tensor spikes, Tensor v_final, Tensor checkpoints, Tensor v_seq)");
  m.def(
      "leaky_bwd_native"
      "(Tensor grad_spikes, Tensor? grad_v_final, Tensor x, Tensor? v_init, Tensor checkpoints, "
      "Tensor? decay_t, Tensor? gain_t, Tensor? bias_t, "
      "float decay, float gain, float bias, float v_threshold, float v_reset, float v_init_value, "
      "bool hard_reset, bool strict, bool detach_reset, int surrogate_id, float surrogate_param, int chunk, "
      "bool need_grad_v_init, bool need_grad_decay, bool need_grad_gain, bool need_grad_bias, "
      "Tensor? grad_v_seq=None) "
      "-> (Tensor grad_x, Tensor grad_v_init, Tensor grad_decay, Tensor grad_gain, Tensor grad_bias)");
}
