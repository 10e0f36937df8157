// Comparing protobuf messages. SerializeAsString is no way to tell whether two messages are
// equal: map fields serialize in no fixed order, so equal messages (a node's labels, a task's
// container labels) can give different bytes, and a component that writes "what changed" would
// write the same object again and again.
#pragma once

#include <string>

namespace google::protobuf {
class Message;
}

namespace skep {

// The message's bytes with map entries in key order: equal exactly when the messages are.
std::string CanonicalBytes(const google::protobuf::Message& m);
inline bool SameMessage(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return CanonicalBytes(a) == CanonicalBytes(b);
}

}  // namespace skep
