// The slm subcommands. Each registers its options on the CLI11 app and runs when chosen;
// run functions return the process exit code (0 ok, 1 error, 2 usage).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "core/dtype.h"
#include "core/status.h"

namespace slm::cli {

// Each subcommand lives in its own cmd_*.cpp and registers itself there, so adding one never
// edits a central list:  SLM_REGISTER_COMMAND(add_run, 10);
// `order` sets its place in `slm --help` (lower first).
using AddCommand = void (*)(CLI::App& app);
struct CommandRegistration {
  CommandRegistration(AddCommand add, int order);
};
#define SLM_REGISTER_COMMAND(add_fn, order) \
  static const ::slm::cli::CommandRegistration slm_registration_##add_fn((add_fn), (order))

// Adds every registered subcommand to app, in order.
void add_registered_commands(CLI::App& app);

// The process exit code a subcommand callback sets.
int& exit_code();

// Prints "slm: <message>" to stderr and returns 1.
int fail(const Status& s);
// Parses a --kv-type value (f16, q8_0, f32; any case) and checks the model can use it.
Status parse_kv_type(const std::string& name, int64_t head_dim, DType* out);
// Reads all of stdin as bytes (nothing stripped).
std::string read_stdin();

}  // namespace slm::cli
