// See version.h. PINFER_VERSION comes from the build (runtime/CMakeLists.txt).
#include "runtime/version.h"

namespace pinfer {

const char *pinferVersion() { return PINFER_VERSION; }

} // namespace pinfer
