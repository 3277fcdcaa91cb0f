#include "server/record_fields.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace vineyard {

namespace {

// An intern table of immutable T, keyed by a view of each live entry's own key
// text (Key(t)). Replacing an entry (its holder is dying: lock() failed)
// erases and re-inserts, so a key never views freed text; the dying one's
// deleter then finds another entry and leaves it. Pools are leaked on purpose:
// deleters may run during static destruction.
template <typename T, const std::string& (*Key)(const T&)>
class Pool {
 public:
  static Pool& Get() {
    static Pool* pool = new Pool();
    return *pool;
  }

  // The live entry for `key`, or one made by `make()` (a new T*) and kept.
  template <typename Make>
  std::shared_ptr<const T> Intern(std::string_view key, Make make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (auto live = it->second.weak.lock()) return live;
      entries_.erase(it);
    }
    const T* raw = make();
    std::shared_ptr<const T> made(raw, [](const T* t) { Get().Release(t); });
    entries_.emplace(std::string_view(Key(*raw)), Entry{raw, made});
    return made;
  }

  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    const T* raw;
    std::weak_ptr<const T> weak;
  };

  void Release(const T* t) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(std::string_view(Key(*t)));
      if (it != entries_.end() && it->second.raw == t) entries_.erase(it);
    }
    delete t;
  }

  std::mutex mu_;
  std::unordered_map<std::string_view, Entry> entries_;
};

const std::string& FieldsKey(const RecordFields& f) { return f.text(); }
const std::string& NameKey(const MemberName& n) { return n.text; }

using FieldsPool = Pool<RecordFields, FieldsKey>;
using NamePool = Pool<MemberName, NameKey>;

}  // namespace

std::shared_ptr<const RecordFields> RecordFields::Of(const json& object) {
  std::string text = object.dump(-1, ' ', false, json::error_handler_t::replace);
  return FieldsPool::Get().Intern(text, [&]() {
    std::string type_name;
    auto tn = object.find(meta_key::kTypename);
    if (tn != object.end() && tn->is_string()) type_name = tn->get<std::string>();
    return new RecordFields(std::move(text), std::move(type_name));
  });
}

const std::shared_ptr<const RecordFields>& RecordFields::Empty() {
  static const auto* empty = new std::shared_ptr<const RecordFields>(Of(json::object()));
  return *empty;
}

json RecordFields::ToJson() const { return json::parse(text_); }

size_t RecordFields::InternedCount() { return FieldsPool::Get().size(); }

std::shared_ptr<const MemberName> InternName(std::string_view name) {
  return NamePool::Get().Intern(name, [&]() {
    std::string text(name);
    std::string quoted = json(text).dump(-1, ' ', false, json::error_handler_t::replace);
    return new MemberName{std::move(text), std::move(quoted)};
  });
}

Members& Members::operator=(const Members& other) {
  if (this == &other) return *this;
  data_.reset(other.size_ == 0 ? nullptr : new Member[other.size_]);
  std::copy(other.begin(), other.end(), data_.get());
  size_ = capacity_ = other.size_;
  return *this;
}

Members& Members::operator=(Members&& other) noexcept {
  data_ = std::move(other.data_);
  size_ = std::exchange(other.size_, 0);
  capacity_ = std::exchange(other.capacity_, 0);
  return *this;
}

void Members::reserve(size_t n) {
  if (n <= capacity_) return;
  std::unique_ptr<Member[]> bigger(new Member[n]);
  std::move(begin(), end(), bigger.get());
  data_ = std::move(bigger);
  capacity_ = static_cast<uint32_t>(n);
}

void Members::emplace_back(std::string_view name, ObjectID id) {
  if (size_ == capacity_) reserve(capacity_ == 0 ? 1 : size_t{capacity_} * 2);
  data_[size_++] = Member{InternName(name), id};
}

}  // namespace vineyard
