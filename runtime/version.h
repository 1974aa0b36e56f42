// pinferc's version, for --version of every tool and executable.
#pragma once

namespace pinfer {

// "0.1.0": the project's version (CMakeLists.txt).
const char *pinferVersion();

} // namespace pinfer
