#include <algorithm>
#include <bit>
#include <charconv>

#include "common/error.hpp"
#include "common/text.hpp"
#include "topology/topology.hpp"

namespace cohort::topology {
namespace {

// Far above any machine (hwloc's own limit is lower); keeps a typo like "0-99999999"
// from allocating gigabytes.
constexpr int kMaxIndex = 1 << 20;

std::string quote(std::string_view what, std::string_view detail) {
  return std::string(what) + ": " + std::string(detail);
}

int parse_number(std::string_view text, std::string_view what) {
  int value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw input_error(quote(what, "'" + std::string(text) +
                                      "' is not a number (write a list like 0-3,8)"));
  }
  if (value < 0 || value > kMaxIndex) {
    throw input_error(quote(what, std::to_string(value) + " is out of range 0-" +
                                      std::to_string(kMaxIndex)));
  }
  return value;
}

// Calls add(first, last) for every "a" or "a-b" item of a list. The items together may name
// at most kMaxIndex + 1 indices, counted before any is added: a short list of long ranges
// ("0-1048576,0-1048576,…") is refused rather than expanded.
template <typename Add>
void parse_list(std::string_view list, std::string_view what, Add add) {
  long long named = 0;
  auto count = [&](int first, int last) {
    named += static_cast<long long>(last) - first + 1;
    if (named > kMaxIndex + 1LL) {
      throw input_error(quote(what, "names more than " + std::to_string(kMaxIndex + 1) + " indices"));
    }
  };
  for (std::string_view item : split(list, ',')) {
    if (item.empty()) throw input_error(quote(what, "empty item (write a list like 0-3,8)"));
    std::size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      int value = parse_number(item, what);
      count(value, value);
      add(value, value);
    } else {
      int first = parse_number(item.substr(0, dash), what);
      int last = parse_number(item.substr(dash + 1), what);
      if (last < first) {
        throw input_error(quote(what, "range " + std::string(item) + " runs backwards (write " +
                                          std::to_string(last) + "-" + std::to_string(first) +
                                          ")"));
      }
      count(first, last);
      add(first, last);
    }
  }
}

}  // namespace

CpuSet::CpuSet(std::initializer_list<int> cpus) {
  for (int cpu : cpus) insert(cpu);
}

CpuSet CpuSet::parse(std::string_view list, std::string_view what) {
  CpuSet set;
  parse_list(list, what, [&](int first, int last) {
    for (int cpu = first; cpu <= last; ++cpu) set.insert(cpu);
  });
  return set;
}

CpuSet CpuSet::range(int first, int last) {
  CpuSet set;
  for (int cpu = first; cpu <= last; ++cpu) set.insert(cpu);
  return set;
}

std::string CpuSet::to_string() const { return format_index_list(cpus()); }

void CpuSet::insert(int cpu) {
  if (cpu < 0) return;
  auto word = static_cast<std::size_t>(cpu) / 64;
  if (words_.size() <= word) words_.resize(word + 1, 0);
  words_[word] |= std::uint64_t{1} << (cpu % 64);
}

void CpuSet::erase(int cpu) {
  if (!contains(cpu)) return;
  words_[static_cast<std::size_t>(cpu) / 64] &= ~(std::uint64_t{1} << (cpu % 64));
  trim();
}

bool CpuSet::contains(int cpu) const {
  if (cpu < 0) return false;
  auto word = static_cast<std::size_t>(cpu) / 64;
  return word < words_.size() && (words_[word] >> (cpu % 64)) & 1;
}

int CpuSet::count() const {
  int n = 0;
  for (auto w : words_) n += std::popcount(w);
  return n;
}

int CpuSet::first() const {
  for (std::size_t i = 0; i < words_.size(); ++i) {
    if (words_[i]) return static_cast<int>(i * 64) + std::countr_zero(words_[i]);
  }
  return -1;
}

std::vector<int> CpuSet::cpus() const {
  std::vector<int> out;
  out.reserve(static_cast<std::size_t>(count()));
  for (std::size_t i = 0; i < words_.size(); ++i) {
    for (auto w = words_[i]; w; w &= w - 1) {
      out.push_back(static_cast<int>(i * 64) + std::countr_zero(w));
    }
  }
  return out;
}

bool CpuSet::intersects(const CpuSet& other) const {
  auto n = std::min(words_.size(), other.words_.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (words_[i] & other.words_[i]) return true;
  }
  return false;
}

bool CpuSet::is_subset_of(const CpuSet& other) const {
  for (std::size_t i = 0; i < words_.size(); ++i) {
    auto theirs = i < other.words_.size() ? other.words_[i] : 0;
    if (words_[i] & ~theirs) return false;
  }
  return true;
}

CpuSet& CpuSet::operator|=(const CpuSet& other) {
  if (words_.size() < other.words_.size()) words_.resize(other.words_.size(), 0);
  for (std::size_t i = 0; i < other.words_.size(); ++i) words_[i] |= other.words_[i];
  return *this;
}

CpuSet& CpuSet::operator&=(const CpuSet& other) {
  if (words_.size() > other.words_.size()) words_.resize(other.words_.size());
  for (std::size_t i = 0; i < words_.size(); ++i) words_[i] &= other.words_[i];
  trim();
  return *this;
}

CpuSet& CpuSet::operator-=(const CpuSet& other) {
  auto n = std::min(words_.size(), other.words_.size());
  for (std::size_t i = 0; i < n; ++i) words_[i] &= ~other.words_[i];
  trim();
  return *this;
}

void CpuSet::trim() {
  while (!words_.empty() && words_.back() == 0) words_.pop_back();
}

std::vector<int> parse_index_list(std::string_view list, std::string_view what) {
  std::vector<int> out;
  parse_list(list, what, [&](int first, int last) {
    for (int i = first; i <= last; ++i) out.push_back(i);
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string format_index_list(const std::vector<int>& indices) {
  std::string out;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(indices[i]);
    if (j > i) out += '-' + std::to_string(indices[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace cohort::topology
