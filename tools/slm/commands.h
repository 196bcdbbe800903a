// The slm subcommands. Each registers its options on the CLI11 app and runs when chosen;
// run functions return the process exit code (0 ok, 1 error, 2 usage).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "core/dtype.h"
#include "core/status.h"

namespace slm::cli {

void add_run(CLI::App& app);
void add_chat(CLI::App& app);
void add_info(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_template(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_quantize(CLI::App& app);
void add_bench(CLI::App& app);

// The process exit code a subcommand callback sets.
int& exit_code();

// Prints "slm: <message>" to stderr and returns 1.
int fail(const Status& s);
// Parses a --kv-type value (f16, q8_0, f32; any case) and checks the model can use it.
Status parse_kv_type(const std::string& name, int64_t head_dim, DType* out);
// Reads all of stdin as bytes (nothing stripped).
std::string read_stdin();

}  // namespace slm::cli
