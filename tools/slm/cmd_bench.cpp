// slm bench (registration placeholder; the command lands with its implementation).
#include "commands.h"

namespace slm::cli {

void add_bench(CLI::App&) {}

}  // namespace slm::cli
