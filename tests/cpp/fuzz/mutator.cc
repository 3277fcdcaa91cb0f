#include "fuzz/mutator.h"

#include <cstring>
#include <limits>

namespace vineyard::fuzz {

namespace {
// Request types the mutator may put in place of a message's own.
const char* const kTypes[] = {
    req::kRegister,        req::kExit,          req::kCreateBuffer,     req::kCreateBuffers,
    req::kSeal,            req::kGetBuffers,    req::kShrinkBuffer,     req::kDropBuffer,
    req::kIncreaseRefCount, req::kRelease,      req::kCreateData,       req::kCreateDatas,
    req::kGetData,         req::kListData,      req::kDelData,          req::kExists,
    req::kPersist,         req::kShallowCopy,   req::kLabel,            req::kPutName,
    req::kGetName,         req::kListName,      req::kDropName,         req::kClusterMeta,
    req::kInstanceStatus,  req::kCreateRemoteBuffers, req::kGetRemoteBuffers,
    req::kVyPut,           req::kVyGet,         "", "no_such_request"};

// Every object or array inside `j` (the root included), up to `max_depth` levels.
void Containers(json* j, int depth, int max_depth, std::vector<json*>* out) {
  if (!j->is_structured()) return;
  out->push_back(j);
  if (depth >= max_depth) return;
  for (auto& child : *j) Containers(&child, depth + 1, max_depth, out);
}
}  // namespace

std::string MakeFrame(const std::string& body) {
  uint64_t len = body.size();
  std::string out(reinterpret_cast<const char*>(&len), sizeof(len));
  out += body;
  return out;
}

std::string Mutator::RandomString(size_t n) {
  std::string s(n, ' ');
  for (auto& c : s) c = static_cast<char>(0x20 + Below(0x5f));
  return s;
}

json Mutator::InterestingNumber() {
  switch (Below(16)) {
    case 0: return 0;
    case 1: return -1;
    case 2: return std::numeric_limits<int64_t>::min();
    case 3: return std::numeric_limits<int64_t>::max();
    case 4: return std::numeric_limits<uint64_t>::max();
    case 5: return uint64_t{1} << 63;
    case 6: return 1e308;
    case 7: return -1e308;
    case 8: return 1.5;
    case 9: return -0.5;
    case 10: return (uint64_t{1} << 53) + 1;
    case 11: return uint64_t{1} << 40;              // a TiB
    case 12: return (uint64_t{256} << 20) + 1;      // just over the default --size
    case 13: return 1e19;                           // above uint64's range, as a double
    case 14: return std::numeric_limits<int32_t>::max() + int64_t{1};
    default: return static_cast<int64_t>(rng_()) >> Below(64);
  }
}

json Mutator::WrongId(const LiveIds& ids) {
  switch (Below(12)) {
    case 0: return ids.blob;
    case 1: return ids.object;
    case 2: return kEmptyBlobID;
    case 3: return 0;
    case 4: return rng_();
    case 5: return ids.signature;
    case 6: return ids.instance;
    case 7: return ObjectIDToString(ids.blob);
    case 8: return ObjectIDToString(ids.object);
    case 9: return "o" + RandomString(Below(20));
    case 10: return std::to_string(ids.object);   // a number as a string
    default: return static_cast<int64_t>(ids.object);  // top bit: negative
  }
}

json Mutator::RandomValue(const LiveIds& ids, int depth) {
  switch (Below(depth > 3 ? 7 : 9)) {
    case 0: return nullptr;
    case 1: return Chance(0.5);
    case 2: return InterestingNumber();
    case 3: return RandomString(Below(40));
    case 4: return WrongId(ids);
    case 5: return ids.name;
    case 6: return kBlobTypename;
    case 7: {
      json a = json::array();
      for (uint64_t i = 0, n = Below(5); i < n; ++i) a.push_back(RandomValue(ids, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (uint64_t i = 0, n = Below(5); i < n; ++i) {
        o[Chance(0.5) ? RandomString(Below(8)) : "id"] = RandomValue(ids, depth + 1);
      }
      return o;
    }
  }
}

void Mutator::MutateJson(json* msg, const LiveIds& ids, std::string* what) {
  std::vector<json*> nodes;
  Containers(msg, 0, 4, &nodes);
  json* node = nodes[Below(nodes.size())];
  // A child to work on: a key of an object or an index of an array.
  std::string key;
  size_t index = 0;
  json* child = nullptr;
  if (node->is_object() && !node->empty()) {
    auto it = node->begin();
    std::advance(it, Below(node->size()));
    key = it.key();
    child = &it.value();
  } else if (node->is_array() && !node->empty()) {
    index = Below(node->size());
    child = &(*node)[index];
  }
  switch (Below(11)) {
    case 0:  // drop a field
      *what += "+drop";
      if (child != nullptr && node->is_object()) node->erase(key);
      else if (child != nullptr) node->erase(index);
      break;
    case 1:  // another JSON type
    case 2:
      *what += "+retype";
      if (child != nullptr) *child = RandomValue(ids);
      break;
    case 3:
      *what += "+number";
      if (child != nullptr) *child = InterestingNumber();
      break;
    case 4:
      *what += "+wrong_id";
      if (child != nullptr) *child = WrongId(ids);
      break;
    case 5:
      *what += "+long_string";
      if (child != nullptr) *child = RandomString(Chance(0.9) ? 1000 + Below(4000) : 200000);
      break;
    case 6: {  // nesting (the parser's limit is 1000 levels: both sides of it)
      *what += "+nest";
      json deep = RandomValue(ids);
      size_t levels = Chance(0.8) ? Below(50) : 900 + Below(200);
      for (size_t i = 0; i < levels; ++i) {
        deep = Chance(0.5) ? json::array({std::move(deep)}) : json{{"m", std::move(deep)}};
      }
      if (child != nullptr) *child = std::move(deep);
      break;
    }
    case 7:
      *what += "+type";
      (*msg)["type"] = kTypes[Below(std::size(kTypes))];
      break;
    case 8: {  // many ids
      *what += "+many";
      json list = json::array();
      size_t n = Chance(0.9) ? Below(100) : 20000;
      for (size_t i = 0; i < n; ++i) list.push_back(Chance(0.5) ? json(ids.blob) : WrongId(ids));
      if (child != nullptr) *child = std::move(list);
      break;
    }
    case 9:  // an extra field
      *what += "+extra";
      if (node->is_object()) (*node)[Chance(0.5) ? RandomString(4) : "num"] = RandomValue(ids);
      break;
    default:  // a flag flipped (e.g. wait=true, which blocks its connection by design)
      *what += "+flag";
      if (child != nullptr) *child = Chance(0.5);
      break;
  }
}

// list_data / list_name: glob and regex patterns, invalid or pathological.
void Mutator::MutatePattern(json* msg, std::string* what) {
  *what += "+pattern";
  static const char* const kPatterns[] = {"[", "(", "\\", "*", "a{2,1}", "(?<n>x)", "[z-a]",
                                          "**", "[!]", "\\\\*", "fuzz::*", "fuzz::.*", ""};
  std::string pattern = kPatterns[Below(std::size(kPatterns))];
  if (Chance(0.5)) {
    // Once crashes: a recursive regex engine overflowed its stack compiling
    // nested groups or matching a long name, and backtracked exponentially.
    switch (Below(3)) {
      case 0: pattern = std::string(30000, '(') + std::string(30000, ')'); break;
      case 1: pattern = ".*"; break;  // with a long typename (see Mutate)
      default: pattern = "(a*)*b"; break;
    }
  }
  (*msg)["pattern"] = pattern;
  (*msg)["regex"] = Chance(0.7);
}

void Mutator::MutateText(std::string* body, Frame* frame) {
  switch (Below(10)) {
    case 0: {  // bit flips
      frame->what += "+bitflip";
      for (uint64_t i = 0, n = 1 + Below(4); i < n && !body->empty(); ++i) {
        (*body)[Below(body->size())] ^= static_cast<char>(1u << Below(8));
      }
      break;
    }
    case 1: {  // invalid UTF-8 inside a string (or anywhere)
      frame->what += "+utf8";
      static const char* const kBad[] = {"\xff", "\xc0\x80", "\xed\xa0\x80", "\xf8\x88\x80\x80",
                                         "\xe2\x82", "\\ud800", "\\udfff\\ud800", "\\u0000"};
      size_t at = body->find("\":\"");
      at = at == std::string::npos ? Below(body->size() + 1) : at + 3;
      body->insert(at, kBad[Below(std::size(kBad))]);
      break;
    }
    case 2:  // a duplicated key: the parser keeps one of them
      frame->what += "+dup_key";
      if (body->size() > 2 && (*body)[0] == '{') {
        size_t end = body->find(',');
        if (end != std::string::npos) body->insert(1, body->substr(1, end));
      }
      break;
    case 3:  // garbage after the JSON
      frame->what += "+trailing";
      *body += Chance(0.5) ? "}" : RandomString(1 + Below(10));
      break;
    case 4:  // garbage before it
      frame->what += "+leading";
      body->insert(0, Chance(0.5) ? std::string("\0", 1) : RandomString(1 + Below(4)));
      break;
    case 5:  // cut short
      frame->what += "+cut_json";
      body->resize(Below(body->size() + 1));
      break;
    case 6:  // nested past the parser's limit, in text
      frame->what += "+deep_text";
      if (body->empty()) *body = "{}";
      body->insert(body->size() - 1, ",\"d\":" + std::string(1001 + Below(100000), '['));
      break;
    case 7:  // an empty body
      frame->what += "+empty";
      body->clear();
      break;
    default:  // a huge number literal
      frame->what += "+big_literal";
      if (size_t at = body->find(':'); at != std::string::npos) {
        body->insert(at + 1, std::string(1 + Below(400), '9') + (Chance(0.5) ? "e99999" : ""));
      }
      break;
  }
}

Frame Mutator::Garbage() {
  Frame f;
  f.what = "garbage";
  std::string body(Below(64), '\0');
  for (auto& c : body) c = static_cast<char>(rng_());
  f.bytes = MakeFrame(body);
  return f;
}

Frame Mutator::Mutate(const json& original, const LiveIds& ids) {
  Frame frame;
  frame.what = original.value("type", "?");
  if (Chance(0.02)) return Garbage();
  json msg = original;
  // 10% go through unchanged: valid requests keep the server's state moving.
  auto content = msg.find("content");
  if (content != msg.end() && content->is_object() && Chance(0.02)) {
    frame.what += "+long_typename";
    (*content)["typename"] = std::string(100000, 'x');
  }
  if (msg.contains("pattern") && Chance(0.3)) {
    MutatePattern(&msg, &frame.what);
  } else if (!Chance(0.1)) {
    for (uint64_t i = 0, n = 1 + Below(3); i < n; ++i) MutateJson(&msg, ids, &frame.what);
  }
  std::string body = msg.dump();
  if (Chance(0.15)) MutateText(&body, &frame);
  frame.bytes = MakeFrame(body);
  if (Chance(0.03)) {  // the frame itself
    uint64_t len = body.size();
    switch (Below(5)) {
      case 0:  // truncated: the rest never comes
        frame.what += "+truncated";
        frame.bytes.resize(sizeof(len) + Below(body.size() + 1));
        frame.may_stall = true;
        break;
      case 1:  // a length prefix a little off (the rest desynchronises the stream)
        frame.what += "+len_off";
        len = Chance(0.5) ? len + 1 + Below(16) : len - std::min<uint64_t>(len, 1 + Below(16));
        std::memcpy(frame.bytes.data(), &len, sizeof(len));
        frame.may_stall = true;
        break;
      case 2:  // a length over the limit
        frame.what += "+len_huge";
        len = Chance(0.5) ? ~uint64_t{0} : (uint64_t{1} << 28) + 1 + Below(1000);
        std::memcpy(frame.bytes.data(), &len, sizeof(len));
        break;
      case 3:  // only part of the length prefix
        frame.what += "+half_prefix";
        frame.bytes.resize(Below(sizeof(len)));
        frame.may_stall = true;
        break;
      default:  // two frames in one write
        frame.what += "+twice";
        frame.bytes += frame.bytes;
        break;
    }
  }
  auto wait = msg.find("wait");
  if (msg.is_object() && wait != msg.end() && !(wait->is_boolean() && !wait->get<bool>()) &&
      !wait->is_null()) {
    frame.may_stall = true;  // wait=true (or something truthy) blocks by design
  }
  auto type = msg.find("type");
  if (type != msg.end() && type->is_string() &&
      type->get<std::string>().find("remote_buffer") != std::string::npos) {
    frame.may_stall = true;  // the server waits for the blob bytes
  }
  if (type != msg.end() && type->is_string() &&
      (type->get<std::string>() == "pull_next_stream_chunk_request" ||
       type->get<std::string>() == "get_next_stream_chunk_request")) {
    frame.may_stall = true;  // a reader waits for a chunk, a writer for room, by design
  }
  return frame;
}

}  // namespace vineyard::fuzz
