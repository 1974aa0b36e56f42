// The names and text form of program steps; see program.h.
#include "runtime/program.h"

namespace pinfer {

const char *stepKindName(StepKind kind) {
  switch (kind) {
  case StepKind::AttnNorm:
    return "attn_norm";
  case StepKind::Attention:
    return "attention";
  case StepKind::AttnAdd:
    return "attn_add";
  case StepKind::FfnNorm:
    return "ffn_norm";
  case StepKind::Transfer:
    return "transfer";
  case StepKind::FfnHalf:
    return "ffn_half";
  case StepKind::Record:
    return "record";
  case StepKind::Predict:
    return "predict";
  case StepKind::Wait:
    return "wait";
  case StepKind::Merge:
    return "merge";
  case StepKind::FfnAdd:
    return "ffn_add";
  case StepKind::AttnPostNorm:
    return "attn_post_norm";
  case StepKind::FfnPostNorm:
    return "ffn_post_norm";
  }
  return "?";
}

std::string stepsText(const ProgramStep *steps, size_t n) {
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    if (i)
      text += ' ';
    text += stepKindName(steps[i].kind);
    if (steps[i].device == StepDevice::Cpu)
      text += "@cpu";
    else if (steps[i].device == StepDevice::Gpu)
      text += "@gpu";
  }
  return text;
}

std::string stepsLine(size_t layer, const ProgramStep *steps, size_t n) {
  return "steps layer " + std::to_string(layer) + ": " + stepsText(steps, n) +
         "\n";
}

} // namespace pinfer
