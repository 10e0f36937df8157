#include "overlay/dataplane/nft.h"

#include <nftables/libnftables.h>

#include <memory>
#include <stdexcept>

namespace skep::dataplane {

void RunNft(const std::string& script, const std::string& what) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) throw std::runtime_error("cannot " + what + ": no nftables context");
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), script.c_str()) != 0) {
    const char* err = nft_ctx_get_error_buffer(ctx.get());
    throw std::runtime_error("cannot " + what + ": " + (err ? err : "nftables refused it"));
  }
}

}  // namespace skep::dataplane
