// Interactive chat in a terminal (-cnv), as llama-cli's conversation mode:
// each line the user types is a user message; the conversation so far, in
// the model's chat template, is the prompt of the assistant's answer,
// which is printed as it is generated. Ends at end of input.
#pragma once

#include "runtime/generate.h"
#include "runtime/tokenizer.h"

#include <istream>
#include <ostream>
#include <string>

namespace pinfer {

// `family`: a chat_template.h family; `system`: the system message, or "";
// `firstUser`: a first user message answered before any line is read, or
// "". `gen` gives the sampling and -n per answer (-1: until the end of the
// turn or the context). Returns the exit status; an answer that reaches
// the end of the context ends the chat with one line on `err`.
int runChat(Decoder &decoder, const Tokenizer &tokenizer,
            const std::string &family, const std::string &system,
            const std::string &firstUser, GenerateOptions gen, std::istream &in,
            std::ostream &out, std::ostream &err);

} // namespace pinfer
