// Source-text values for the emitters; see SourceText.h.
#include "codegen/SourceText.h"

#include <cmath>
#include <iomanip>
#include <sstream>

namespace pinfer {

std::string cppStringLiteral(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c == '?') {
      out += '\\';
      out += char(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      out += '\\';
      out += char('0' + (c >> 6));
      out += char('0' + ((c >> 3) & 7));
      out += char('0' + (c & 7));
    }
  }
  out += '"';
  return out;
}

std::string floatLiteral(float f) {
  if (std::isnan(f))
    return "__builtin_nanf(\"\")";
  if (std::isinf(f))
    return f > 0 ? "__builtin_inff()" : "(-__builtin_inff())";
  std::ostringstream os;
  os << std::setprecision(9) << f << "f";
  std::string s = os.str();
  if (s.find_first_of(".e") == std::string::npos)
    s.insert(s.size() - 1, ".0");
  return s;
}

} // namespace pinfer
