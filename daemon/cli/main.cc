// skep: the command-line interface to skepd. Parsing and dispatch; the commands are in
// swarm.cc and node.cc.
#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <iostream>

#include "daemon/cli/command.h"
#include "daemon/cli/template.h"
#include "daemon/common/runtime.h"
#include "daemon/common/version.h"

namespace skep::cli {

namespace {

std::string FlagColumn(const Flag& f) {
  std::string s = f.short_name ? std::string("-") + f.short_name + ", " : "    ";
  s += "--" + f.name;
  if (!f.value.empty()) s += " " + f.value;
  return s;
}

void PrintHelp(const Command& c) {
  std::cout << "\nUsage:  skep " << c.path << (c.args_usage.empty() ? "" : " " + c.args_usage)
            << "\n\n"
            << c.summary << "\n";
  std::vector<Flag> flags = c.flags;
  flags.push_back({"help", 0, "", "Print usage"});
  size_t width = 0;
  for (const auto& f : flags)
    width = std::max(width, FlagColumn(f).size());
  std::cout << "\nOptions:\n";
  for (const auto& f : flags) {
    const std::string col = FlagColumn(f);
    std::cout << "  " << col << std::string(width - col.size() + 3, ' ') << f.help << "\n";
  }
}

void PrintTopHelp(const std::vector<Command>& cmds) {
  std::cout << "\nUsage:  skep [OPTIONS] COMMAND\n\nA swarm-mode cluster manager.\n\nOptions:\n"
            << "  -H, --host string   skepd's control socket (default unix:///run/skep/skepd.sock,"
            << " or $SKEP_HOST)\n      --help          Print usage\n\nCommands:\n";
  size_t width = 0;
  for (const auto& c : cmds)
    width = std::max(width, c.path.size());
  for (const auto& c : cmds) {
    std::cout << "  " << c.path << std::string(width - c.path.size() + 3, ' ') << c.summary << "\n";
  }
  std::cout << "\nRun 'skep COMMAND --help' for more information on a command.\n";
}

[[noreturn]] void Usage(const std::string& msg, const std::string& path) {
  throw UsageError(msg + "\nSee 'skep " + path + " --help'.");
}

int Dispatch(int argc, char** argv) {
  const std::vector<Command> cmds = AllCommands();
  std::vector<std::string> words(argv + 1, argv + argc);
  std::string host;
  if (const char* env = std::getenv("SKEP_HOST")) host = env;
  size_t i = 0;
  // Global options come before the command.
  while (i < words.size() && !words[i].empty() && words[i][0] == '-') {
    const std::string w = words[i];
    if (w == "--help" || w == "-h") {
      PrintTopHelp(cmds);
      return 0;
    }
    if (w == "-H" || w == "--host") {
      if (i + 1 >= words.size()) Usage("flag needs an argument: " + w, "");
      host = words[i + 1];
      i += 2;
    } else if (w.rfind("--host=", 0) == 0) {
      host = w.substr(7);
      ++i;
    } else if (w == "-v" || w == "--version") {
      std::cout << skep::VersionLine("skep") << "\n";
      return 0;
    } else {
      Usage("unknown flag: " + w, "");
    }
  }
  if (host.empty()) host = "unix:///run/skep/skepd.sock";
  if (host.rfind("unix://", 0) != 0) Usage("invalid host \"" + host + "\": use unix:///PATH", "");

  // The longest command path that matches the words.
  const Command* cmd = nullptr;
  size_t used = 0;
  for (const auto& c : cmds) {
    std::vector<std::string> parts;
    std::string part;
    for (char ch : c.path + " ") {
      if (ch == ' ') {
        parts.push_back(part);
        part.clear();
      } else {
        part += ch;
      }
    }
    if (i + parts.size() > words.size()) continue;
    bool match = true;
    for (size_t k = 0; k < parts.size(); ++k)
      match = match && words[i + k] == parts[k];
    if (match && parts.size() > used) {
      cmd = &c;
      used = parts.size();
    }
  }
  if (cmd == nullptr) {
    if (i >= words.size()) {
      PrintTopHelp(cmds);
      return 0;
    }
    // A group name alone prints the group's commands.
    bool group = false;
    for (const auto& c : cmds)
      group = group || c.path.rfind(words[i] + " ", 0) == 0;
    if (group && i + 1 == words.size()) {
      std::cout << "\nUsage:  skep " << words[i] << " COMMAND\n\nCommands:\n";
      for (const auto& c : cmds) {
        if (c.path.rfind(words[i] + " ", 0) == 0)
          std::cout << "  " << c.path << "\t" << c.summary << "\n";
      }
      return 0;
    }
    std::string what = words[i];
    if (group && i + 1 < words.size()) what += " " + words[i + 1];
    throw UsageError("'" + what + "' is not a skep command.\nSee 'skep --help'.");
  }
  i += used;

  Invocation inv;
  inv.command = cmd->path;
  inv.host = host;
  bool flags_done = false;
  for (; i < words.size(); ++i) {
    const std::string w = words[i];
    if (flags_done || w.empty() || w[0] != '-' || w == "-") {
      inv.args.push_back(w);
      if (cmd->args_end_flags) flags_done = true;
      continue;
    }
    if (w == "--") {
      flags_done = true;
      continue;
    }
    if (w == "--help" || w == "-h") {
      PrintHelp(*cmd);
      return 0;
    }
    std::string name, value;
    bool has_value = false;
    const Flag* flag = nullptr;
    if (w.rfind("--", 0) == 0) {
      name = w.substr(2);
      if (const size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      for (const auto& f : cmd->flags) {
        if (f.name == name) flag = &f;
      }
      if (!flag) Usage("unknown flag: --" + name, cmd->path);
    } else {
      if (w.size() != 2)
        Usage("unknown shorthand flag: '" + w.substr(1, 1) + "' in " + w, cmd->path);
      for (const auto& f : cmd->flags) {
        if (f.short_name == w[1]) flag = &f;
      }
      if (!flag) Usage("unknown shorthand flag: '" + w.substr(1) + "' in " + w, cmd->path);
      name = flag->name;
    }
    if (flag->value.empty()) {
      if (has_value && value != "true" && value != "false") {
        Usage("invalid argument \"" + value + "\" for --" + name + ": expected true or false",
              cmd->path);
      }
      if (!has_value || value == "true") inv.values[name].push_back("true");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= words.size()) Usage("flag needs an argument: --" + name, cmd->path);
      value = words[++i];
    }
    if (!flag->repeated && inv.values.count(name)) inv.values[name].clear();
    inv.values[name].push_back(value);
  }
  if (inv.args.size() < cmd->min_args || inv.args.size() > cmd->max_args) {
    std::string expect;
    if (cmd->min_args == cmd->max_args) {
      expect = "exactly " + std::to_string(cmd->min_args) + " argument" +
               (cmd->min_args == 1 ? "" : "s");
    } else if (cmd->max_args == SIZE_MAX) {
      expect = "at least " + std::to_string(cmd->min_args) + " argument" +
               (cmd->min_args == 1 ? "" : "s");
    } else {
      expect = "at most " + std::to_string(cmd->max_args) + " argument" +
               (cmd->max_args == 1 ? "" : "s");
    }
    throw UsageError("\"skep " + cmd->path + "\" requires " + expect + ".\nSee 'skep " + cmd->path +
                     " --help'.\n\nUsage:  skep " + cmd->path + " " + cmd->args_usage + "\n\n" +
                     cmd->summary);
  }
  return cmd->run(inv);
}

}  // namespace
}  // namespace skep::cli

int main(int argc, char** argv) {
  skep::ConfigureProcess();
  try {
    return skep::cli::Dispatch(argc, argv);
  } catch (const skep::cli::UsageError& e) {
    std::cerr << "skep: " << e.what() << "\n";
    return 2;
  } catch (const skep::cli::DaemonError& e) {
    std::cerr << "skep: " << e.what() << "\n";
    return 1;
  } catch (const skep::cli::TemplateError& e) {
    // A --format that does not parse is a wrong command line; one that fails on the data
    // (a field the objects lack) fails like Docker's, with 1.
    std::cerr << "skep: " << e.what() << "\n";
    return e.kind() == skep::cli::TemplateError::Kind::kParse ? 2 : 1;
  }
}
