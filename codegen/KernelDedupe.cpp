// Identical kernels compiled once; see KernelDedupe.h.
#include "codegen/KernelDedupe.h"

#include <cctype>
#include <map>

namespace pinfer {

namespace {

constexpr const char *kKernelStart = "extern \"C\" __global__ void ";

// The end of the block that opens at `open` ('{'), past its '}', skipping
// comments and literals; npos when it does not close.
size_t blockEnd(const std::string &s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '/') {
      i = s.find('\n', i);
      if (i == std::string::npos)
        return i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      i = s.find("*/", i + 2);
      if (i == std::string::npos)
        return i;
      ++i;
    } else if (c == '"' || c == '\'') {
      for (++i; i < s.size() && s[i] != c; ++i)
        i += s[i] == '\\';
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return std::string::npos;
}

// The kernel's name: the identifier before the parameter list, after the
// launch bounds.
std::string kernelName(const std::string &s, size_t start, size_t &nameAt) {
  size_t i = start + std::string(kKernelStart).size();
  const std::string bounds = "__launch_bounds__(";
  if (s.compare(i, bounds.size(), bounds) == 0) {
    i = s.find(')', i);
    if (i == std::string::npos)
      return "";
    ++i;
  }
  while (i < s.size() && std::isspace(uint8_t(s[i])))
    ++i;
  nameAt = i;
  while (i < s.size() && (std::isalnum(uint8_t(s[i])) || s[i] == '_'))
    ++i;
  return s.substr(nameAt, i - nameAt);
}

} // namespace

std::string dedupeKernels(const std::string &source,
                          std::vector<KernelAlias> &aliases) {
  std::map<std::string, std::string> first; // code, name aside -> name
  std::string out;
  out.reserve(source.size());
  size_t done = 0;
  for (size_t at = source.find(kKernelStart); at != std::string::npos;
       at = source.find(kKernelStart, at + 1)) {
    if (at != 0 && source[at - 1] != '\n')
      continue;
    size_t nameAt = 0;
    const std::string name = kernelName(source, at, nameAt);
    const size_t open = source.find('{', nameAt);
    const size_t end = name.empty() || open == std::string::npos
                           ? std::string::npos
                           : blockEnd(source, open);
    if (end == std::string::npos)
      break; // not a kernel this understands: the rest as it is
    std::string code = source.substr(at, end - at);
    code.replace(nameAt - at, name.size(), "@");
    out.append(source, done, at - done);
    auto [it, isNew] = first.emplace(std::move(code), name);
    if (isNew) {
      out.append(source, at, end - at);
    } else {
      out += "// " + name + ": the same code as " + it->second;
      aliases.emplace_back(name, it->second);
    }
    done = at = end;
  }
  out.append(source, done, std::string::npos);
  return out;
}

} // namespace pinfer
