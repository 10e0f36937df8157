#include "overlay/dataplane/nft.h"

#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace skep::dataplane {

void RunNft(const std::string& script, const std::string& what) {
  // libnftables ends the whole process when it cannot open its netlink socket (a kernel
  // without nf_tables, or an emulator that does not pass netfilter's netlink through): ask the
  // kernel first, so that this is one component's error instead.
  const int probe = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (probe < 0) {
    throw std::runtime_error("cannot " + what + ": nftables is not available here (netlink: " +
                             std::strerror(errno) + ")");
  }
  close(probe);
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) throw std::runtime_error("cannot " + what + ": no nftables context");
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), script.c_str()) != 0) {
    const char* err = nft_ctx_get_error_buffer(ctx.get());
    throw std::runtime_error("cannot " + what + ": " + (err ? err : "nftables refused it"));
  }
}

}  // namespace skep::dataplane
