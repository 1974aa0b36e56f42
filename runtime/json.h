// UTF-8 repair, and the writer of every --json output.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace pinfer {

// `s` with every byte that does not belong to a valid UTF-8 sequence
// (overlong forms, surrogates and values above U+10FFFF included) replaced
// by U+FFFD.
std::string sanitizeUtf8(const std::string &s);

// Writes one JSON document to a stream, value by value, for every --json
// output (pinferc verbs and generated executables). The document is built
// with nlohmann-json and written by it when its outermost container closes,
// so that escaping and number formatting are done one way everywhere.
// Keys keep the order they were written in; invalid UTF-8 in strings
// (metadata of model files) becomes U+FFFD; non-finite numbers, null.
class JsonWriter {
public:
  explicit JsonWriter(std::ostream &os, bool pretty = true);
  ~JsonWriter();
  JsonWriter(const JsonWriter &) = delete;
  JsonWriter &operator=(const JsonWriter &) = delete;

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
  JsonWriter &value(double v);
  JsonWriter &value(bool v);
  JsonWriter &null();

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
  JsonWriter &finishIfDone();
  struct Document; // the nlohmann-json value being built
  std::ostream &os_;
  bool pretty_;
  std::unique_ptr<Document> doc_;
};

} // namespace pinfer
