#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "daemon/common/files.h"
#include "daemon/node/state.h"

using skep::node::DataDir;
using skep::node::kLocalStateFormat;
namespace api = skep::api;
namespace fs = std::filesystem;

TEST_CASE("state.pb says its format; a newer one is refused, never misread", "[state]") {
  const fs::path dir = fs::temp_directory_path() / ("skep-state-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const DataDir data(dir.string());
  CHECK_FALSE(data.LoadState());

  api::LocalState st;
  st.set_node_id("n1");
  st.set_advertise_addr("10.0.0.1:2377");
  data.SaveState(st);
  auto loaded = data.LoadState();
  REQUIRE(loaded);
  CHECK(loaded->format() == kLocalStateFormat);
  CHECK(loaded->advertise_addr() == "10.0.0.1:2377");

  // Written before formats were numbered (no field): read as format 1.
  skep::files::WriteAtomically((dir / "state.pb").string(), st.SerializeAsString(), 0600);
  CHECK(data.LoadState()->node_id() == "n1");

  st.set_format(kLocalStateFormat + 1);
  skep::files::WriteAtomically((dir / "state.pb").string(), st.SerializeAsString(), 0600);
  CHECK_THROWS_WITH(data.LoadState(),
                    Catch::Contains("state.pb was written by a newer skep (format " +
                                    std::to_string(kLocalStateFormat + 1)) &&
                        Catch::EndsWith("): upgrade skepd"));
  fs::remove_all(dir);
}
