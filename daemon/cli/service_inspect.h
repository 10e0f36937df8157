// What `skep service inspect` prints: Docker's JSON of a service (with skep's pending-task and
// health-check notes), or with --pretty, Docker's text.
#pragma once

#include <boost/json/value.hpp>
#include <iosfwd>

#include "control.pb.h"

namespace skep::cli {

boost::json::value ServiceJson(const api::ServiceView& v);
void PrintPretty(const api::ServiceView& v, std::ostream& out);

}  // namespace skep::cli
