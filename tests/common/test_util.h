// Shared helpers for the test binaries: paths to data and tools, temporary directories, and
// running reference programs (the slm CLI, Debian's python3 with torch, node with npm peers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slm::test {

std::string source_dir();  // the repository root
std::string shared_dir();  // ../shared beside the repository
std::string slm_exe();     // the built slm CLI
// Debian's python3 (which has python3-torch), not the first python3 on PATH.
std::string python_exe();
// Runs `node` with NODE_PATH set to tests/ref/node_modules.
std::string node_cmd();

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs a shell command line; stdin_data is piped in. Captures stdout and stderr.
RunResult run(const std::string& cmd, const std::string& stdin_data = "");

// A fresh temporary directory removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& data);
// Shell-quotes one argument.
std::string sh_quote(const std::string& s);

}  // namespace slm::test
