// The program description the emitters read; see ProgramDesc.h.
#include "codegen/ProgramDesc.h"


namespace pinfer {

bool ProgramDesc::hasGpuPart() const {
  if (smArch.empty())
    return false;
  if (headOnGPU)
    return true;
  for (const LayerDesc &l : layers)
    if (!l.hot.empty() || l.attentionOnGPU)
      return true;
  return false;
}

std::vector<uint32_t> ProgramDesc::packedOrder(int layer) const {
  const LayerDesc &l = layers[layer];
  std::vector<uint32_t> order(l.hot);
  order.insert(order.end(), l.cold.begin(), l.cold.end());
  return order;
}

} // namespace pinfer
