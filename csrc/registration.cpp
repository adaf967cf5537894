// Schemas of the native (C++ CPU / CUDA) leaky-neuron ops, and the module init that lets the library be
// imported as the Python module `snnkernels._C`.
//
// The `snnkernels` namespace is shared with the ops the Python package defines (torch.library.define of
// the Triton ops), so this is a TORCH_LIBRARY_FRAGMENT, not a TORCH_LIBRARY (which would claim the whole
// namespace and clash). The schema strings are FWD_SCHEMA / BWD_SCHEMA of snnkernels/ops/leaky.py, generated
// from ops/leaky_settings.py into snnkernels/leaky_args.h (scripts/generate_leaky_args.py): the Python
// side registers the fake functions and autograd for these ops with
// register_leaky_autograd("snnkernels::leaky_fwd_native", "snnkernels::leaky_bwd_native").
// Implementations: leaky/leaky_api.cpp (CPU) and leaky/leaky_api_cuda.cpp (CUDA); the spike packing's:
// spike_pack/spike_pack_cpu.cpp (CPU).
#include <Python.h>
#include <torch/library.h>

#include "snnkernels/leaky_args.h"

extern "C" {
// `import snnkernels._C` loads this shared library (which runs the registrations below) and returns an
// empty module; the ops live in torch.ops.snnkernels.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY_FRAGMENT(snnkernels, m) {
  m.def("leaky_fwd_native" SNNK_LEAKY_FWD_SCHEMA);
  m.def("leaky_bwd_native" SNNK_LEAKY_BWD_SCHEMA);
  // the spike packing's CPU kernels (spike_pack/spike_pack_cpu.cpp); fakes in snnkernels/ops/spike_pack.py
  m.def("spike_pack_native(Tensor x, bool check) -> Tensor");
  m.def("spike_unpack_native(Tensor packed, SymInt[] shape, ScalarType dtype) -> Tensor");
}
