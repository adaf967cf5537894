// CPU backward of the leaky neuron for bf16_t elements (one file per element type: parallel builds).
#include "leaky/leaky_cpu_isa.h"  // first: its pragmas must cover this whole file

namespace snnk {
namespace leaky_cpu {

SNNK_LEAKY_CPU_BWD_ENTRY(bwd_blocks_bf16, bf16_t)

}  // namespace leaky_cpu
}  // namespace snnk
