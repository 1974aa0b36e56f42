// Values written into generated source (host C++ and CUDA C++) as source
// text. Every string that reaches generated code (model, tensor and target
// names, paths) goes through cppStringLiteral and nothing else: names come
// from model files, traces, plans and flags, which are untrusted input.
#pragma once

#include <string>
#include <string_view>

namespace pinfer {

// A C++ string literal holding exactly the bytes of `s`: printable ASCII
// stays as it is except '"', '\\' and '?' (no trigraphs), every other byte
// is a three-digit octal escape (never greedy like \x). The literal is one
// line whatever `s` holds, so it can end no comment and open no directive.
std::string cppStringLiteral(std::string_view s);

// A float as a C++/CUDA literal that reads back to the same value; NaN and
// the infinities as the compilers' builtins.
std::string floatLiteral(float f);

} // namespace pinfer
