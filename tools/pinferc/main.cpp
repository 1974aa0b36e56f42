//===- main.cpp - the pinferc command line --------------------------------===//
//
// Parses flags (CLI11, kept to this one file because it compiles slowly) and
// calls the verbs in compiler/Driver.h.
//
//===----------------------------------------------------------------------===//

#include "compiler/Driver.h"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char **argv) {
  CLI::App app{"pinferc: compiles a GGUF language model and its activation "
               "profile into an executable split between GPU and CPU"};
  app.require_subcommand(1, 1);

  pinfer::InspectArgs inspect;
  CLI::App *inspectCmd =
      app.add_subcommand("inspect", "Print a model's metadata, tensors and "
                                    "sparsity facts");
  inspectCmd->add_option("model", inspect.model, "GGUF model file")
      ->required();
  inspectCmd->add_flag("--json", inspect.json, "Print JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    // Errors are one line; --help prints the usage and exits 0.
    if (e.get_exit_code() == 0)
      return app.exit(e);
    std::cerr << "pinferc: error: " << e.what() << " (see pinferc --help)\n";
    return 2;
  }

  if (*inspectCmd)
    return pinfer::runInspect(inspect);
  return 0;
}
