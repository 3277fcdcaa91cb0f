// vineyard::Array<T> through the C++ client against a real vineyardd: build,
// seal, read back mapped (IPC) and fetched (RPC), and the errors.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "client/array.h"
#include "client/rpc_client.h"
#include "test_server.h"
#include "test_util.h"

namespace vineyard {
namespace {

using testing::TestServer;

class ArrayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = TestServer::Start({"--rpc", "--rpc_socket_port=0"});
    ASSERT_TRUE(server_->Running());
    client_ = server_->Connect();
    ASSERT_TRUE(client_);
  }
  std::unique_ptr<TestServer> server_;
  std::shared_ptr<Client> client_;
};

TEST_F(ArrayTest, BuildSealAndReadInPlace) {
  ASSERT_OK_AND_ASSIGN(auto builder, ArrayBuilder<double>::Make(*client_, 1000));
  for (size_t i = 0; i < builder->size(); ++i) (*builder)[i] = i * 0.5;
  EXPECT_FALSE(builder->sealed());
  ASSERT_OK_AND_ASSIGN(ObjectID id, builder->Seal(*client_));
  EXPECT_TRUE(builder->sealed());

  auto reader = server_->Connect();
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader->GetObject(id));
  EXPECT_EQ(meta.GetTypeName(), "vineyard::Array<double>");
  ASSERT_OK_AND_ASSIGN(uint64_t size, meta.GetKeyValueAs<uint64_t>("size_"));
  EXPECT_EQ(size, 1000u);
  ASSERT_OK_AND_ASSIGN(auto array, Array<double>::FromMeta(meta));
  ASSERT_EQ(array.size(), 1000u);
  for (size_t i = 0; i < array.size(); ++i) ASSERT_EQ(array[i], i * 0.5);
  // in place: the elements are the mapped blob's bytes
  ASSERT_OK_AND_ASSIGN(ObjectID blob_id, meta.GetMemberId("buffer_"));
  ASSERT_OK_AND_ASSIGN(auto blob, meta.GetBuffer(blob_id));
  EXPECT_EQ(static_cast<const void*>(array.data()), static_cast<const void*>(blob->data()));
  EXPECT_EQ(array.id(), id);
}

TEST_F(ArrayTest, FromVectorAndTypeNames) {
  std::vector<int64_t> values = {-3, 0, 7, INT64_MAX};
  ASSERT_OK_AND_ASSIGN(auto builder, ArrayBuilder<int64_t>::Make(*client_, values));
  ASSERT_OK_AND_ASSIGN(ObjectID id, builder->Seal(*client_));
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, client_->GetObject(id));
  EXPECT_EQ(meta.GetTypeName(), "vineyard::Array<int64>");
  ASSERT_OK_AND_ASSIGN(auto array, Array<int64_t>::FromMeta(meta));
  EXPECT_EQ(std::vector<int64_t>(array.begin(), array.end()), values);
  EXPECT_EQ(ArrayTypeName<int32_t>(), "vineyard::Array<int>");
  EXPECT_EQ(ArrayTypeName<float>(), "vineyard::Array<float>");
  EXPECT_EQ(ArrayTypeName<uint64_t>(), "vineyard::Array<uint64>");
}

TEST_F(ArrayTest, EmptyArray) {
  ASSERT_OK_AND_ASSIGN(auto builder, ArrayBuilder<int32_t>::Make(*client_, 0));
  ASSERT_OK_AND_ASSIGN(ObjectID id, builder->Seal(*client_));
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, client_->GetObject(id));
  ASSERT_OK_AND_ASSIGN(auto array, Array<int32_t>::FromMeta(meta));
  EXPECT_EQ(array.size(), 0u);
}

TEST_F(ArrayTest, ReadOverRpc) {
  ASSERT_OK_AND_ASSIGN(auto builder, ArrayBuilder<uint32_t>::Make(*client_, std::vector<uint32_t>{1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(ObjectID id, builder->Seal(*client_));
  const std::string& ep = client_->rpc_endpoint();
  ASSERT_OK_AND_ASSIGN(auto rpc,
                       RPCClient::Connect("127.0.0.1", std::stoi(ep.substr(ep.rfind(':') + 1))));
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, rpc->GetObject(id));
  ASSERT_OK_AND_ASSIGN(auto array, Array<uint32_t>::FromMeta(meta));
  EXPECT_EQ(std::vector<uint32_t>(array.begin(), array.end()), (std::vector<uint32_t>{1, 2, 3}));
}

TEST_F(ArrayTest, Errors) {
  ASSERT_OK_AND_ASSIGN(auto builder, ArrayBuilder<double>::Make(*client_, std::vector<double>{1.0}));
  ASSERT_OK_AND_ASSIGN(ObjectID id, builder->Seal(*client_));
  EXPECT_STATUS(kObjectSealed, builder->Seal(*client_));  // nothing made twice

  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, client_->GetObject(id));
  EXPECT_STATUS(kObjectTypeError, Array<float>::FromMeta(meta));  // another T

  ObjectMeta bad;  // a size_ beyond its blob
  bad.SetTypeName("vineyard::Array<double>");
  bad.AddKeyValue("size_", 1000);
  ASSERT_OK_AND_ASSIGN(ObjectID blob_id, meta.GetMemberId("buffer_"));
  bad.AddMember("buffer_", blob_id);
  ASSERT_OK_AND_ASSIGN(ObjectID bad_id, client_->Put(bad, {}));
  ASSERT_OK_AND_ASSIGN(ObjectMeta got, client_->GetObject(bad_id));
  EXPECT_STATUS(kInvalid, Array<double>::FromMeta(got));

  ObjectMeta no_size;  // a field missing
  no_size.SetTypeName("vineyard::Array<double>");
  EXPECT_FALSE(Array<double>::FromMeta(no_size).ok());
}

TEST_F(ArrayTest, UnsealedBuilderLeavesNothing) {
  uint64_t before = testing::Usage(*client_);
  {
    ASSERT_OK_AND_ASSIGN(auto builder, ArrayBuilder<int64_t>::Make(*client_, 1 << 16));
    (*builder)[0] = 1;
  }  // dropped unsealed: its blob goes
  EXPECT_EQ(testing::WaitUsage(*client_, before), before);
}

}  // namespace
}  // namespace vineyard
