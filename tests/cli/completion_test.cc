// The bash completion script, run in bash as bash runs it on a TAB.
#include <unistd.h>
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "daemon/cli/command.h"
#include "daemon/cli/completion.h"

namespace {

// What bash offers for the line `words` with the cursor on its last word.
std::string Complete(const std::string& script, const std::string& words) {
  char path[] = "/tmp/skep-completion-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << script;
  const std::string cmd = "bash -c 'source " + std::string(path) + " && COMP_WORDS=(" + words +
                          ") && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && _skep && "
                          "echo \"${COMPREPLY[*]}\"' 2>&1";
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  std::array<char, 4096> buf;
  while (p && fgets(buf.data(), buf.size(), p.get()))
    out += buf.data();
  unlink(path);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

TEST_CASE("bash completes skep's groups, commands and flags from the command table", "[cli]") {
  const std::string script = skep::cli::BashCompletion(skep::cli::AllCommands());
  CHECK(Complete(script, "skep ser") == "service");
  CHECK(Complete(script, "skep sw") == "swarm");
  CHECK(Complete(script, "skep --h") == "--help --host");
  CHECK(Complete(script, "skep node pro") == "promote");
  CHECK(Complete(script, "skep -H unix:///run/x.sock node ls --f") == "--filter --format");
  CHECK(Complete(script, "skep service create --repl") == "--replicas-max-per-node --replicas");
  CHECK(Complete(script, "skep service scale --de") == "--detach");
  CHECK(Complete(script, "skep completion \"\"").empty());  // the argument: bash's default
  // After the command's arguments began, flags are still the command's.
  CHECK(Complete(script, "skep service rm web --h") == "--help");
  // Every command of the table can be reached.
  for (const auto& c : skep::cli::AllCommands()) {
    const std::string last = c.path.substr(c.path.rfind(' ') + 1);
    const std::string before = c.path.substr(0, c.path.size() - last.size());
    CHECK_THAT(" " + Complete(script, "skep " + before + last) + " ",
               Catch::Contains(" " + last + " "));
  }
}
