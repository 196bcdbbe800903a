// The Dockerfile cannot be built in CI (no Docker), so this keeps it from drifting: its build
// stage installs the build packages of scripts/setup.sh and runs scripts/build.sh (the
// script the README's commands run), and its runtime stage installs the Debian packages that
// own every shared library the built slm links (found with ldd and dpkg -S on this machine).
// Its health check command is run against a real `slm serve` on the loopback interface.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using namespace slm;

std::string dockerfile() { return test::read_text(test::source_dir() + "/Dockerfile"); }

// The text of stage `n` (0-based): from its FROM line to the next FROM.
std::string stage(const std::string& df, int n) {
  size_t pos = 0;
  for (int i = 0; i <= n; ++i) {
    pos = df.find("\nFROM ", pos + 1);
    if (pos == std::string::npos) return "";
  }
  const size_t end = df.find("\nFROM ", pos + 1);
  return df.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

// Package names of the `apt-get install` in a stage: the words after "install" that are not
// options, up to the next "&&".
std::set<std::string> apt_packages(const std::string& st) {
  std::set<std::string> out;
  const size_t at = st.find("apt-get install");
  if (at == std::string::npos) return out;
  std::istringstream in(st.substr(at + 15));
  std::string w;
  while (in >> w && w != "&&") {
    if (w[0] != '-' && w != "\\") out.insert(w);
  }
  return out;
}

// The packages=( ... ) array of scripts/setup.sh, comments dropped.
std::set<std::string> setup_packages() {
  const std::string s = test::read_text(test::source_dir() + "/scripts/setup.sh");
  std::set<std::string> out;
  const size_t a = s.find("packages=(");
  const size_t b = s.find("\n)", a);
  if (a == std::string::npos || b == std::string::npos) return out;
  std::istringstream lines(s.substr(a + 10, b - a - 10));
  std::string line;
  while (std::getline(lines, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string w;
    while (words >> w) out.insert(w);
  }
  return out;
}

std::string joined(const std::set<std::string>& s) {
  std::string r;
  for (const auto& x : s) r += (r.empty() ? "" : " ") + x;
  return r;
}

TEST(Dockerfile, BuildStageUsesSetupPackagesAndBuildScript) {
  const std::string df = dockerfile();
  const std::string build = stage(df, 0);
  ASSERT_NE(build.find("FROM debian:bookworm AS build"), std::string::npos) << build;
  const std::set<std::string> docker = apt_packages(build);
  const std::set<std::string> setup = setup_packages();
  ASSERT_FALSE(setup.empty()) << "no packages=( ... ) in scripts/setup.sh";
  // Everything the image installs is something setup.sh installs ...
  for (const std::string& p : docker) {
    EXPECT_TRUE(setup.count(p)) << p << " is in the Dockerfile but not in scripts/setup.sh";
  }
  // ... and every build tool and library setup.sh installs is in the image; only test,
  // fuzzing and reference tools are left out.
  const std::set<std::string> test_only = {"libgtest-dev", "libgmock-dev", "libclang-rt-14-dev"};
  std::set<std::string> needed = {"build-essential", "cmake", "ninja-build", "pkg-config"};
  for (const std::string& p : setup) {
    if (p.size() > 4 && p.ends_with("-dev") && !test_only.count(p)) needed.insert(p);
  }
  for (const std::string& p : needed) {
    EXPECT_TRUE(docker.count(p)) << p << " (scripts/setup.sh) is missing from the Dockerfile's "
                                 << "build stage, which has: " << joined(docker);
  }
  // The build command is the script the README's commands run (scripts/demo.sh), and the
  // runtime stage copies from the directory that script builds into.
  EXPECT_NE(build.find("RUN scripts/build.sh"), std::string::npos);
  const std::string demo = test::read_text(test::source_dir() + "/scripts/demo.sh");
  EXPECT_NE(demo.find("scripts/build.sh"), std::string::npos);
  const std::string script = test::read_text(test::source_dir() + "/scripts/build.sh");
  EXPECT_NE(script.find("cmake -S . -B build -G Ninja"), std::string::npos) << script;
  EXPECT_NE(script.find("ninja -C build"), std::string::npos) << script;
  EXPECT_NE(df.find("COPY --from=build /src/build/slm /usr/local/bin/slm"), std::string::npos);
}

TEST(Dockerfile, RuntimeStageHasEveryLinkedLibrary) {
  const std::string runtime = stage(dockerfile(), 1);
  ASSERT_NE(runtime.find("FROM debian:bookworm-slim"), std::string::npos) << runtime;
  const std::set<std::string> docker = apt_packages(runtime);
  // Essential packages every Debian image has.
  const std::set<std::string> base = {"libc6", "libgcc-s1"};
  auto ldd = test::run("ldd " + test::sh_quote(test::slm_exe()));
  ASSERT_EQ(ldd.exit_code, 0) << ldd.err;
  std::istringstream lines(ldd.out);
  std::string line;
  int n_libs = 0;
  while (std::getline(lines, line)) {
    const size_t arrow = line.find("=> /");
    if (arrow == std::string::npos) continue;
    std::string path = line.substr(arrow + 3);
    path = path.substr(0, path.find(" ("));
    // Sanitizer runtimes exist only in the instrumented test build, never in the image.
    if (path.find("/libasan") != std::string::npos || path.find("/libubsan") != std::string::npos) {
      continue;
    }
    // dpkg knows the path the package shipped: try it as ldd prints it, then resolved
    // (symlinks, merged /usr).
    const std::string q = test::sh_quote(path);
    auto owner = test::run("dpkg -S " + q + " 2>/dev/null || dpkg -S \"$(readlink -f " + q +
                           ")\" 2>/dev/null || dpkg -S \"$(readlink -f " + q + " | sed 's|^/usr||')\"");
    ASSERT_EQ(owner.exit_code, 0) << "no Debian package owns " << path << ": " << owner.err;
    const std::string pkg = owner.out.substr(0, owner.out.find_first_of(":,"));
    ++n_libs;
    EXPECT_TRUE(docker.count(pkg) || base.count(pkg))
        << path << " comes from " << pkg << ", which the runtime stage does not install ("
        << joined(docker) << ")";
  }
  EXPECT_GE(n_libs, 3);  // at least libstdc++, PCRE2, utf8proc
}

TEST(Dockerfile, ServesAsNonRootWithHealthCheck) {
  const std::string runtime = stage(dockerfile(), 1);
  EXPECT_NE(runtime.find("\nUSER slm"), std::string::npos);
  EXPECT_NE(runtime.find("useradd --system"), std::string::npos);
  EXPECT_NE(runtime.find("EXPOSE 8080"), std::string::npos);
  EXPECT_NE(runtime.find("HEALTHCHECK"), std::string::npos);
  EXPECT_NE(runtime.find("GET /health"), std::string::npos);
  EXPECT_NE(runtime.find("ENTRYPOINT [\"slm\", \"serve\", \"--host\", \"0.0.0.0\", \"--port\", \"8080\"]"),
            std::string::npos);
  // The build context leaves out build trees and npm installs.
  const std::string ignore = test::read_text(test::source_dir() + "/.dockerignore");
  EXPECT_NE(ignore.find("build*"), std::string::npos);
  EXPECT_NE(ignore.find("**/node_modules"), std::string::npos);
}

// A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// The HEALTHCHECK's exec-form command, run by bash against `slm serve` (the image's entry
// point) on a free loopback port: it fails while nothing listens and passes once the server
// answers GET /health with 200.
TEST(Dockerfile, HealthCheckPassesAgainstSlmServe) {
  const std::string runtime = stage(dockerfile(), 1);
  const size_t at = runtime.find("CMD [\"bash\"");
  ASSERT_NE(at, std::string::npos) << runtime;
  const size_t end = runtime.find("]\n", at);
  auto cmd = nlohmann::json::parse(runtime.substr(at + 4, end + 1 - (at + 4)));
  ASSERT_EQ(cmd.size(), 3u);
  ASSERT_EQ(cmd[1], "-c");
  std::string script = cmd[2].get<std::string>();
  const int port = free_port();
  ASSERT_GT(port, 0);
  const size_t p = script.find("/8080");
  ASSERT_NE(p, std::string::npos) << script;
  script.replace(p + 1, 4, std::to_string(port));
  const std::string check = std::string("bash -c ").append(test::sh_quote(script));

  EXPECT_NE(test::run(check).exit_code, 0) << "the check passed with no server on port " << port;

  const std::string models = test::shared_dir() + "/models";
  // Bounded: at most 100 checks 0.2 s apart, then the server is stopped whatever happened.
  // Appended piece by piece: g++ 12 warns (-Wrestrict, falsely) on long chains of operator+.
  std::string sh = test::sh_quote(test::slm_exe());
  sh.append(" serve ").append(test::sh_quote(models + "/stories260K.bin"));
  sh.append(" --tokenizer ").append(test::sh_quote(models + "/tok512.bin"));
  sh.append(" --host 127.0.0.1 --port ").append(std::to_string(port));
  sh.append(" --parallel 1 --ctx 128 -t 1 2>/dev/null & pid=$!\n");
  sh.append("ok=1; for i in $(seq 1 100); do if ").append(check);
  sh.append("; then ok=0; break; fi; sleep 0.2; done\nkill $pid; wait $pid; exit $ok\n");
  auto r = test::run(sh);
  EXPECT_EQ(r.exit_code, 0) << "the health check never passed against slm serve: " << r.err;
}

}  // namespace
