// slm command-line entry point: registers the subcommands and dispatches to the chosen one.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <utility>
#include <vector>

#include "commands.h"
#include "kernels/attention.h"

namespace slm::cli {

namespace {
// A function-local static, so registrations from other files' static initializers find it
// constructed whatever the initialization order.
std::vector<std::pair<int, AddCommand>>& registry() {
  static std::vector<std::pair<int, AddCommand>> commands;
  return commands;
}
}  // namespace

CommandRegistration::CommandRegistration(AddCommand add, int order) {
  registry().emplace_back(order, add);
}

void add_registered_commands(CLI::App& app) {
  auto commands = registry();
  std::stable_sort(commands.begin(), commands.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [order, add] : commands) add(app);
}

int& exit_code() {
  static int code = 0;
  return code;
}

int fail(const Status& s) {
  std::fprintf(stderr, "slm: %s\n", s.message().c_str());
  return 1;
}

Status parse_kv_type(const std::string& name, int64_t head_dim, DType* out) {
  DType t;
  if (!dtype_from_name(name, &t) || (t != DType::F16 && t != DType::F32 && t != DType::Q8_0)) {
    return error("--kv-type '%s' is not one of f16, q8_0, f32", name.c_str());
  }
  SLM_TRY(check_kv_type(t, head_dim));
  *out = t;
  return Status();
}

std::string read_stdin() {
  std::string data;
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(STDIN_FILENO, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

}  // namespace slm::cli

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe is a write error, not a crash
  CLI::App app{"slm: build, shrink and run small language models on the CPU.\n"
               "MODEL is a GGUF file, a Hugging Face model directory, or a llama2.c checkpoint "
               "(with --tokenizer tokenizer.bin)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "slm 0.1.0");
  slm::cli::add_registered_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return slm::cli::exit_code();
}
