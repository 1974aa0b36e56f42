// Kernels whose code is the same but for their name (every layer of one
// shape and weight type emits its own) compiled once: NVRTC's time and the
// images' size grow with the kernels it compiles, and a 30-layer model
// emits each kind of kernel 30 times over.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pinfer {

// A kernel name and the kernel of the same code that the module holds in
// its place (Program::kernelAliases, CudaDriver::function).
using KernelAlias = std::pair<std::string, std::string>;

// `source` with each extern "C" kernel whose text, its name aside, equals
// an earlier one's replaced by a comment naming that one; the replaced
// names and their kernels appended to `aliases`.
std::string dedupeKernels(const std::string &source,
                          std::vector<KernelAlias> &aliases);

} // namespace pinfer
