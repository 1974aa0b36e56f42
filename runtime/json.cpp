// UTF-8 repair, and the JSON writer over nlohmann-json (runtime/json.h).
#include "runtime/json.h"

#include <nlohmann/json.hpp>

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

using Json = nlohmann::ordered_json;

struct JsonWriter::Document {
  Json root;
  std::vector<Json *> open; // the containers being written, outermost first
  std::string key;          // of the next value in an object

  // Puts `v` where the document is: the root, the open array's next
  // element or the open object's value under the last key.
  Json *place(Json v) {
    if (open.empty()) {
      root = std::move(v);
      return &root;
    }
    Json &parent = *open.back();
    if (parent.is_object())
      return &(parent[key] = std::move(v));
    parent.push_back(std::move(v));
    return &parent.back();
  }
};

JsonWriter::JsonWriter(std::ostream &os, bool pretty)
    : os_(os), pretty_(pretty), doc_(std::make_unique<Document>()) {}

JsonWriter::~JsonWriter() = default;

JsonWriter &JsonWriter::beginObject() {
  doc_->open.push_back(doc_->place(Json::object()));
  return *this;
}

JsonWriter &JsonWriter::beginArray() {
  doc_->open.push_back(doc_->place(Json::array()));
  return *this;
}

JsonWriter &JsonWriter::endObject() {
  doc_->open.pop_back();
  return finishIfDone();
}

JsonWriter &JsonWriter::endArray() { return endObject(); }

JsonWriter &JsonWriter::key(const std::string &k) {
  doc_->key = sanitizeUtf8(k);
  return *this;
}

JsonWriter &JsonWriter::value(const std::string &v) {
  // JSON text is UTF-8: metadata strings from model files may not be.
  doc_->place(sanitizeUtf8(v));
  return finishIfDone();
}

JsonWriter &JsonWriter::value(int64_t v) {
  doc_->place(v);
  return finishIfDone();
}

JsonWriter &JsonWriter::value(uint64_t v) {
  doc_->place(v);
  return finishIfDone();
}

JsonWriter &JsonWriter::value(double v) {
  doc_->place(v); // written as null when not finite
  return finishIfDone();
}

JsonWriter &JsonWriter::value(bool v) {
  doc_->place(v);
  return finishIfDone();
}

JsonWriter &JsonWriter::null() {
  doc_->place(nullptr);
  return finishIfDone();
}

// Writes the document once nothing is open (a lone scalar is one too).
JsonWriter &JsonWriter::finishIfDone() {
  if (doc_->open.empty()) {
    os_ << doc_->root.dump(pretty_ ? 2 : -1, ' ', false,
                           Json::error_handler_t::replace);
    if (pretty_)
      os_ << '\n';
  }
  return *this;
}

} // namespace pinfer
