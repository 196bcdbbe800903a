// slm command-line entry point: parses the subcommand and hands off to the library.
#include <CLI/CLI.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"slm: build, shrink and run small language models on the CPU"};
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
