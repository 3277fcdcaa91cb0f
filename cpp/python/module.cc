// vineyard._C: the native layer of the vineyard Python package.
#include "python/bindings.h"

NB_MODULE(_C, m) {
  using namespace vineyard::py;
  m.doc() = "Native bindings of the vineyard C++ client (ids, metadata, blobs, IPC and RPC clients).";
  // Clients kept in module globals at interpreter exit are not leaks worth a warning.
  nb::set_leak_warnings(false);
  BindErrors(m);
  BindIds(m);
  BindBlobs(m);
  BindMeta(m);
  BindClient(m);
  BindRpcClient(m);
}
