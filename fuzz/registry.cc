// What a registry sends the worker's registry client: image indexes, manifests and image
// configs (daemon/executor/manifest.h), WWW-Authenticate challenges (ParseWwwAuthenticate,
// daemon/executor/registry.h) and redirect Locations (Url::Resolve); plus image references, which
// come from users. Every parser gets the whole input. Malformed input throws ExecutorError;
// any other exception escaping, a crash or a UBSan report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/executor/errors.h"
#include "daemon/executor/http_client.h"
#include "daemon/executor/image_ref.h"
#include "daemon/executor/manifest.h"
#include "daemon/executor/registry.h"

namespace {

namespace executor = skep::executor;

template <class F>
void Try(F parse) {
  try {
    parse();
  } catch (const executor::ExecutorError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Try([&] { (void)executor::ManifestMediaType(text, executor::media::kOciIndex); });
  Try([&] {
    const std::vector<executor::IndexEntry> index = executor::ParseIndex(text);
    for (const executor::Platform& want :
         {executor::Platform{"linux", "amd64", ""}, executor::Platform{"linux", "arm", "v7"},
          executor::Platform{"linux", "arm64", "v8"}}) {
      Try([&] { (void)executor::SelectManifest(index, want); });
    }
  });
  Try([&] { (void)executor::ParseManifest(text); });
  Try([&] {
    executor::ImageInfo info;
    (void)executor::ChainIds(executor::ParseImageConfig(text, info));
  });
  (void)executor::ParseWwwAuthenticate(text);
  Try([&] {
    static const executor::Url base = executor::Url::Parse("https://registry.example:5000/v2/");
    (void)base.Resolve(text).String();
  });
  Try([&] { (void)executor::ParseImageRef(text); });
  return 0;
}
