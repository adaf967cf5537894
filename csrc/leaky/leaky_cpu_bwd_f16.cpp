// CPU backward of the leaky neuron for half_t elements (one file per element type: parallel builds).
#include "leaky/leaky_cpu_isa.h"  // first: its pragmas must cover this whole file

namespace snnk {
namespace leaky_cpu {

SNNK_LEAKY_CPU_BWD_ENTRY(bwd_blocks_f16, half_t)

}  // namespace leaky_cpu
}  // namespace snnk
