#include "daemon/cli/completion.h"

#include <map>
#include <set>
#include <sstream>

namespace skep::cli {

namespace {

// The words bash may offer after a command path ("skep", "skep node", ...), and each command's
// flags (bash's associative arrays take no empty key, hence "skep" in front).
struct Table {
  std::map<std::string, std::set<std::string>> next;
  std::map<std::string, std::vector<std::string>> flags;
};

Table TableOf(const std::vector<Command>& commands) {
  Table t;
  t.next["skep"].insert({"--host", "-H", "--help", "--version"});
  for (const auto& c : commands) {
    std::string prefix = "skep";
    std::istringstream words(c.path);
    for (std::string w; words >> w;) {
      t.next[prefix].insert(w);
      prefix += " " + w;
    }
    std::vector<std::string>& flags = t.flags[prefix];
    for (const auto& f : c.flags) {
      flags.push_back("--" + f.name);
      if (f.short_name) flags.push_back(std::string("-") + f.short_name);
    }
    flags.push_back("--help");
  }
  return t;
}

// A bash single-quoted word.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

template <class Words>
std::string Joined(const Words& words) {
  std::string out;
  for (const auto& w : words)
    out += (out.empty() ? "" : " ") + w;
  return out;
}

}  // namespace

std::string BashCompletion(const std::vector<Command>& commands) {
  const Table t = TableOf(commands);
  std::ostringstream out;
  out << "# bash completion for skep, made by `skep completion bash` from its command table.\n"
         "declare -gA _skep_next=(\n";
  for (const auto& [path, words] : t.next)
    out << "  [" << Quote(path) << "]=" << Quote(Joined(words)) << "\n";
  out << ")\ndeclare -gA _skep_flags=(\n";
  for (const auto& [path, flags] : t.flags)
    out << "  [" << Quote(path) << "]=" << Quote(Joined(flags)) << "\n";
  // The command path is the longest run of words, flags aside (and -H's value), that the table
  // knows; then the word under the cursor is a flag of that command, or the next word of a
  // group, or an argument (files, as bash would).
  out << ")\n"
         "_skep() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} path=skep i w\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    w=${COMP_WORDS[i]}\n"
         "    case $w in\n"
         "      -H | --host) [ \"$path\" = skep ] && ((i++)) ;;\n"
         "      -*) ;;\n"
         "      *)\n"
         "        [[ -v \"_skep_next[$path]\" && \" ${_skep_next[$path]} \" == *\" $w \"* ]] || "
         "break\n"
         "        path=\"$path $w\"\n"
         "        ;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ $cur == -* && -v \"_skep_flags[$path]\" ]]; then\n"
         "    mapfile -t COMPREPLY < <(compgen -W \"${_skep_flags[$path]}\" -- \"$cur\")\n"
         "  elif [[ -v \"_skep_next[$path]\" ]]; then\n"
         "    mapfile -t COMPREPLY < <(compgen -W \"${_skep_next[$path]}\" -- \"$cur\")\n"
         "  fi\n"
         "}\n"
         "complete -o default -F _skep skep\n";
  return out.str();
}

}  // namespace skep::cli
