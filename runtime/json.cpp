// Implementation of the streaming JSON writer.
#include "runtime/json.h"

#include <cmath>
#include <cstdio>

namespace pinfer {

std::string sanitizeUtf8(const std::string &s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3
               : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && len > 1) {
      // Reject overlong forms, surrogates and values above U+10FFFF.
      uint32_t cp = c & (0x7F >> len);
      for (size_t k = 1; k < len; ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      static const uint32_t minCp[5] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= minCp[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string jsonQuote(const std::string &raw) {
  // JSON text is UTF-8: metadata strings from model files may not be.
  const std::string s = sanitizeUtf8(raw);
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
  }
  out.push_back('"');
  return out;
}

void JsonWriter::newline() {
  if (!pretty_)
    return;
  os_ << '\n';
  for (size_t i = 0; i < first_.size(); ++i)
    os_ << "  ";
}

void JsonWriter::separator() {
  if (afterKey_) {
    afterKey_ = false;
    return;
  }
  if (first_.empty())
    return;
  if (!first_.back())
    os_ << ',';
  first_.back() = false;
  newline();
}

JsonWriter &JsonWriter::beginObject() {
  separator();
  os_ << '{';
  first_.push_back(true);
  return *this;
}

JsonWriter &JsonWriter::endObject() {
  bool empty = first_.back();
  first_.pop_back();
  if (!empty)
    newline();
  os_ << '}';
  if (first_.empty() && pretty_)
    os_ << '\n';
  return *this;
}

JsonWriter &JsonWriter::beginArray() {
  separator();
  os_ << '[';
  first_.push_back(true);
  return *this;
}

JsonWriter &JsonWriter::endArray() {
  bool empty = first_.back();
  first_.pop_back();
  if (!empty)
    newline();
  os_ << ']';
  return *this;
}

JsonWriter &JsonWriter::key(const std::string &k) {
  separator();
  os_ << jsonQuote(k) << (pretty_ ? ": " : ":");
  afterKey_ = true;
  return *this;
}

JsonWriter &JsonWriter::value(const std::string &v) {
  separator();
  os_ << jsonQuote(v);
  return *this;
}

JsonWriter &JsonWriter::value(int64_t v) {
  separator();
  os_ << v;
  return *this;
}

JsonWriter &JsonWriter::value(uint64_t v) {
  separator();
  os_ << v;
  return *this;
}

JsonWriter &JsonWriter::value(double v) {
  separator();
  if (!std::isfinite(v)) {
    os_ << "null";
    return *this;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  os_ << buf;
  return *this;
}

JsonWriter &JsonWriter::value(bool v) {
  separator();
  os_ << (v ? "true" : "false");
  return *this;
}

JsonWriter &JsonWriter::null() {
  separator();
  os_ << "null";
  return *this;
}

JsonWriter &JsonWriter::raw(const std::string &json) {
  separator();
  os_ << json;
  return *this;
}

} // namespace pinfer
