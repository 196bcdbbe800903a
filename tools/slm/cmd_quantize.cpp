// slm quantize (registration placeholder; the command lands with its implementation).
#include "commands.h"

namespace slm::cli {

void add_quantize(CLI::App&) {}

}  // namespace slm::cli
