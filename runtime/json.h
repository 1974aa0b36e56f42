// A small streaming JSON writer used for every --json output (pinferc verbs
// and generated executables), so that escaping and number formatting are
// done one way everywhere.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace pinfer {

// `s` with every byte that does not belong to a valid UTF-8 sequence
// (overlong forms, surrogates and values above U+10FFFF included) replaced
// by U+FFFD.
std::string sanitizeUtf8(const std::string &s);

// Escapes a string for a JSON string literal (quotes included). Invalid
// UTF-8 becomes U+FFFD (sanitizeUtf8), so the output is always valid JSON
// text; control characters become \uXXXX.
std::string jsonQuote(const std::string &s);

class JsonWriter {
public:
  explicit JsonWriter(std::ostream &os, bool pretty = true)
      : os_(os), pretty_(pretty) {}

  JsonWriter &beginObject();
  JsonWriter &endObject();
  JsonWriter &beginArray();
  JsonWriter &endArray();
  JsonWriter &key(const std::string &k);

  JsonWriter &value(const std::string &v);
  JsonWriter &value(const char *v) { return value(std::string(v)); }
  JsonWriter &value(int64_t v);
  JsonWriter &value(uint64_t v);
  JsonWriter &value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter &value(unsigned v) { return value(static_cast<uint64_t>(v)); }
  JsonWriter &value(double v); // non-finite values are written as null
  JsonWriter &value(bool v);
  JsonWriter &null();
  // A value already serialised as JSON text.
  JsonWriter &raw(const std::string &json);

  template <typename T> JsonWriter &field(const std::string &k, const T &v) {
    key(k);
    return value(v);
  }
  template <typename T>
  JsonWriter &array(const std::string &k, const std::vector<T> &vs) {
    key(k);
    beginArray();
    for (const T &v : vs)
      value(v);
    return endArray();
  }

private:
  void separator();
  void newline();
  std::ostream &os_;
  bool pretty_;
  std::vector<bool> first_; // per open container: no element written yet
  bool afterKey_ = false;
};

} // namespace pinfer
