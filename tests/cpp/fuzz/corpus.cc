#include "fuzz/corpus.h"

namespace vineyard::fuzz {

std::vector<json> Corpus(const LiveIds& ids) {
  std::vector<json> c;
  RegisterRequest reg;
  reg.version = kProtocolVersion;
  c.push_back(WriteRegisterRequest(reg));
  reg.releases_references = true;
  reg.store_type = "Plasma";
  c.push_back(WriteRegisterRequest(reg));
  c.push_back(WriteExitRequest());

  // Blobs.
  c.push_back(WriteCreateBufferRequest(4096));
  c.push_back(WriteCreateBuffersRequest({1, 100, 0}));
  c.push_back(json{{"type", req::kCreateDiskBuffer}, {"size", 64}, {"path", "/tmp/fuzz"}});
  c.push_back(WriteSealRequest(ids.blob));
  c.push_back(WriteGetBuffersRequest({{ids.blob, kEmptyBlobID}, false}));
  // The published client's form: {"num": n, "0": id0, ...}.
  c.push_back(json{{"type", req::kGetBuffers}, {"num", 1}, {"0", ids.blob}, {"unsafe", true}});
  c.push_back(WriteShrinkBufferRequest(ids.blob, 8));
  c.push_back(WriteDropBufferRequest(ids.blob));
  c.push_back(WriteIncreaseRefCountRequest({ids.blob}));
  c.push_back(WriteReleaseRequest(ids.blob));

  // Remote buffers (the bytes that should follow come from the next messages).
  c.push_back(WriteCreateRemoteBuffersRequest({{16}, false, false, true}));
  c.push_back(WriteCreateRemoteBuffersRequest({{8, 0, 4}, false, false, false}));
  c.push_back(WriteCreateRemoteBuffersRequest({{32}, true, false, false}));
  c.push_back(WriteGetRemoteBuffersRequest({{ids.blob}, false, false, false}));
  c.push_back(WriteGetRemoteBuffersRequest({{ids.blob, kEmptyBlobID}, false, true, false}));

  // Metadata.
  json tree = {{"typename", "fuzz::Tensor"},
               {"instance_id", ids.instance},
               {"nbytes", 8},
               {"shape_", "[2]"},
               {"buffer_", {{"id", ObjectIDToString(ids.blob)},
                            {"typename", kBlobTypename},
                            {"instance_id", ids.instance}}}};
  c.push_back(WriteCreateDataRequest(tree));
  c.push_back(WriteCreateDatasRequest({tree, json{{"typename", "fuzz::Empty"},
                                                  {"instance_id", ids.instance}}}));
  c.push_back(WriteGetDataRequest({{ids.object}, false, false}));
  c.push_back(WriteGetDataRequest({{ids.object, ids.blob}, true, false}));
  c.push_back(WriteListDataRequest({"fuzz::*", false, 5}));
  c.push_back(WriteListDataRequest({"fuzz::.*", true, 100}));
  DeleteRequest del;
  del.ids = {ids.object};
  c.push_back(WriteDeleteRequest(del));
  del.with_feedbacks = true;
  del.force = true;
  del.memory_trim = true;
  c.push_back(WriteDeleteRequest(del));
  c.push_back(WriteIdRequest(req::kExists, ids.object));
  c.push_back(WriteIdRequest(req::kPersist, ids.object));
  c.push_back(WriteIdRequest(req::kIfPersist, ids.object));
  c.push_back(WriteShallowCopyRequest(ids.object, json{{"extra_field", 1}}));
  c.push_back(WriteLabelRequest(ids.object, {"k"}, {"v"}));
  c.push_back(WriteIdRequest(req::kIsInUse, ids.blob));
  c.push_back(WriteIdRequest(req::kIsSpilled, ids.blob));
  c.push_back(WriteMigrateObjectRequest(ids.object));

  // Names.
  c.push_back(WritePutNameRequest(ids.object, ids.name));
  c.push_back(WriteGetNameRequest(ids.name, false));
  c.push_back(WriteListNameRequest({"fuzz*", false, 10}));
  c.push_back(WriteDropNameRequest(ids.name));

  // Server-wide.
  c.push_back(WriteTypeOnly(req::kClear));
  c.push_back(WriteTypeOnly(req::kMemoryTrim));
  c.push_back(WriteTypeOnly(req::kClusterMeta));
  c.push_back(WriteTypeOnly(req::kInstanceStatus));

  // Ours: fused put and get.
  VyPutRequest put;
  put.tree = tree;
  put.persist = true;
  put.name = ids.name + "-vy";
  put.release = {ids.blob};
  c.push_back(WriteVyPutRequest(put));
  c.push_back(WriteVyGetRequest({{ids.object}, false, {ids.blob}}));

  // Streams (PROTOCOL.md).
  c.push_back(json{{"type", "create_stream_request"}, {"object_id", ids.object}});
  c.push_back(json{{"type", "open_stream_request"}, {"object_id", ids.object}, {"mode", 1}});
  c.push_back(json{{"type", "get_next_stream_chunk_request"}, {"id", ids.object}, {"size", 64}});
  c.push_back(json{{"type", "push_next_stream_chunk_request"}, {"id", ids.object},
                   {"chunk", ids.blob}});
  c.push_back(json{{"type", "pull_next_stream_chunk_request"}, {"id", ids.object}});
  c.push_back(json{{"type", "stop_stream_request"}, {"id", ids.object}, {"failed", false}});
  c.push_back(json{{"type", "drop_stream_request"}, {"id", ids.object}});
  return c;
}

}  // namespace vineyard::fuzz
