// Files that must never be seen half written: state, certificates, task records.
#pragma once

#include <string>

namespace skep::files {

// Replaces `path` with `data`: written to a temporary file of its own, synced, renamed over
// `path`, and the directory synced. Throws std::runtime_error naming the file on failure.
void WriteAtomically(const std::string& path, const std::string& data, int mode);
// The whole file. Throws std::runtime_error naming it when it cannot be read.
std::string Read(const std::string& path);

}  // namespace skep::files
