// Join tokens as `skep swarm join --token` and the CA service get them from users and from
// joining nodes: skep::pki::ParseJoinToken. A token that is not one throws PkiError; anything
// else escaping, or a crash, is a finding. A token that parses must be the one it was parsed
// from, put back together.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "daemon/common/pki.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string token(reinterpret_cast<const char*>(data), size);
  try {
    const skep::pki::ParsedToken parsed = skep::pki::ParseJoinToken(token);
    if ("SWMTKN-1-" + parsed.ca_digest + "-" + parsed.secret != token) std::abort();
  } catch (const skep::pki::PkiError&) {
  }
  return 0;
}
