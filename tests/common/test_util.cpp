// Implementation of the test helpers (POSIX: mkdtemp, popen-free fork/exec through sh).
#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace slm::test {

std::string source_dir() { return SLM_SOURCE_DIR; }
std::string shared_dir() { return SLM_SHARED_DIR; }
std::string slm_exe() { return SLM_EXE; }

std::string python_exe() {
  if (const char* p = std::getenv("SLM_TEST_PYTHON")) return p;
  return "/usr/bin/python3";
}

std::string node_cmd() {
  return "NODE_PATH=" + sh_quote(source_dir() + "/tests/ref/node_modules") + " node";
}

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot write " + path);
  f << data;
}

RunResult run(const std::string& cmd, const std::string& stdin_data) {
  TempDir tmp;
  std::string in = tmp.file("stdin"), out = tmp.file("stdout"), err = tmp.file("stderr");
  write_text(in, stdin_data);
  std::string full = "(" + cmd + ") <" + sh_quote(in) + " >" + sh_quote(out) + " 2>" + sh_quote(err);
  int rc = std::system(full.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + (WIFSIGNALED(rc) ? WTERMSIG(rc) : 0);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "slm-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace slm::test
