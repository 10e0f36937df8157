#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
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

namespace {

api::LocalState FixtureState() {
  api::LocalState st;
  st.set_node_id("n1");
  st.set_cluster_id("c1");
  st.set_raft_id(7);
  st.set_role(api::ROLE_MANAGER);
  st.set_advertise_addr("10.0.0.11:2377");
  st.set_listen_addr("0.0.0.0:2377");
  st.set_data_path_addr("10.0.1.11");
  api::ManagerPeer* peer = st.add_managers();
  peer->set_node_id("n1");
  peer->set_raft_id(7);
  peer->set_addr("10.0.0.11:2377");
  return st;
}

}  // namespace

// Made the fixture: SKEP_FIXTURE_DIR=tests/fixtures/format-1 build/tests/node_unit_test
// "[.write-fixtures]" (see tests/manager/format_fixtures_test.cc).
TEST_CASE("write the state.pb fixture", "[.write-fixtures]") {
  const char* out = std::getenv("SKEP_FIXTURE_DIR");
  REQUIRE(out != nullptr);
  DataDir(out).SaveState(FixtureState());
}

TEST_CASE("a state.pb of format 1 reads the same", "[state][fixtures]") {
  const auto st = DataDir(SKEP_SOURCE_DIR "/tests/fixtures/format-1").LoadState();
  REQUIRE(st);
  api::LocalState want = FixtureState();
  want.set_format(1);
  CHECK(st->SerializeAsString() == want.SerializeAsString());
}
