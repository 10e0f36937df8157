// Running an nftables script through libnftables (never the `nft` binary), in the network
// namespace of the calling thread (netlink::InNamespace runs it elsewhere).
#pragma once

#include <string>

namespace skep::dataplane {

// Throws std::runtime_error with `what` and nftables' own message when the script fails (a
// failed script changes nothing: it is one transaction), or when the kernel has no nftables.
void RunNft(const std::string& script, const std::string& what);

}  // namespace skep::dataplane
