// id_set: a set of small integer ids (0, 1, 2, ...) that answers "the k-th
// smallest member" in O(log n), for drawing a uniformly random member
// without walking the set. A Fenwick tree of counts over the id range; the
// range grows on demand.
//
// The asynchronous server draws one idle client per dispatch from it
// (client_registry::pick_one, docs/architecture.md "Many clients in one
// process"): a walk over every client per dispatch made async runs O(N) per
// update.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fedsp {

class id_set {
public:
  /// Adds `id`; false if it was already in.
  bool insert(std::uint32_t id) {
    if (contains(id))
      return false;
    grow(static_cast<std::size_t>(id) + 1);
    in_[id] = 1;
    add(id, +1);
    ++size_;
    return true;
  }

  /// Removes `id`; false if it was not in.
  bool erase(std::uint32_t id) {
    if (!contains(id))
      return false;
    in_[id] = 0;
    add(id, -1);
    --size_;
    return true;
  }

  bool contains(std::uint32_t id) const { return id < in_.size() && in_[id] != 0; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  /// The k-th smallest member, k counted from 0; requires k < size().
  std::uint32_t kth(std::size_t k) const {
    // Descend the implicit tree: the largest position whose prefix count is
    // at most k, plus one, is the answer.
    std::size_t pos = 0;
    std::size_t step = 1;
    while (step * 2 <= tree_.size())
      step *= 2;
    for (; step > 0; step /= 2) {
      auto next = pos + step;
      if (next <= tree_.size() && static_cast<std::size_t>(tree_[next - 1]) <= k) {
        pos = next;
        k -= static_cast<std::size_t>(tree_[next - 1]);
      }
    }
    return static_cast<std::uint32_t>(pos);
  }

private:
  // tree_[i - 1] holds the count of ids in (i - lowbit(i), i], 1-based.
  void add(std::size_t id, std::int64_t delta) {
    for (auto i = id + 1; i <= tree_.size(); i += i & (~i + 1))
      tree_[i - 1] += delta;
  }

  void grow(std::size_t n) {
    if (n <= in_.size())
      return;
    auto cap = in_.empty() ? std::size_t{16} : in_.size();
    while (cap < n)
      cap *= 2;
    // Rebuild the counts for the larger range: O(cap), amortised O(1) per
    // insert since the range doubles.
    in_.resize(cap, 0);
    tree_.assign(cap, 0);
    for (std::size_t i = 1; i <= cap; ++i) {
      tree_[i - 1] += in_[i - 1];
      auto parent = i + (i & (~i + 1));
      if (parent <= cap)
        tree_[parent - 1] += tree_[i - 1];
    }
  }

  std::vector<std::uint8_t> in_;
  std::vector<std::int64_t> tree_;
  std::size_t size_ = 0;
};

} // namespace fedsp
