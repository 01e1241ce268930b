// common/text.hpp — lists in text ("0,2,3" and back), lines out of streamed output, sizes
// in bytes ("64M") and tables for the commands' plain output.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace cohort {

// `text` in lower case (ASCII letters only): names people may write in any case.
inline std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// The items, each as format(item) gives it, with `sep` between them.
template <typename T, typename F>
std::string join(const std::vector<T>& items, std::string_view sep, F&& format) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += format(items[i]);
  }
  return out;
}

inline std::string join(const std::vector<std::string>& items, std::string_view sep) {
  return join(items, sep, [](const std::string& s) -> const std::string& { return s; });
}

// The pieces of `text` between separators: none for an empty text, and an empty piece
// wherever two separators meet ("a,,b" has three), so that callers can reject it.
inline std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  for (std::size_t start = 0;;) {
    const std::size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

// Complete lines out of output that arrives in pieces (a child's pipe): feed() each piece,
// and each whole line, without its '\n', goes to `take`; finish() hands over a last line
// that had no '\n'.
class LineSplitter {
 public:
  template <typename Take>
  void feed(std::string_view piece, Take&& take) {
    partial_.append(piece);
    std::size_t start = 0, end;
    while ((end = partial_.find('\n', start)) != std::string::npos) {
      take(std::string_view(partial_).substr(start, end - start));
      start = end + 1;
    }
    partial_.erase(0, start);
  }
  template <typename Take>
  void finish(Take&& take) {
    if (!partial_.empty()) take(std::string_view(partial_));
    partial_.clear();
  }
  // Bytes held of a line not yet complete: a reader bounds it against a peer that never ends one.
  std::size_t pending() const { return partial_.size(); }

 private:
  std::string partial_;
};

// Whether `name` can name a job or an experiment the way Slurm job names and file names
// take it: a letter or digit, then up to 62 letters, digits, '.', '_' or '-'. Scanned by
// hand: std::regex recurses once per character and overflows the stack on long input.
inline bool is_object_name(std::string_view name) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (name.empty() || name.size() > 63 || !alnum(name[0])) return false;
  return std::all_of(name.begin() + 1, name.end(),
                     [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

// A whole number written in decimal with an optional minus sign, in [low, high]; nothing
// for anything else (other characters, no digits, out of range).
inline std::optional<long long> parse_integer(std::string_view text, long long low, long long high) {
  const bool negative = !text.empty() && text.front() == '-';
  if (negative) text.remove_prefix(1);
  if (text.empty() || text.size() > 18) return std::nullopt;
  long long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (negative) value = -value;
  if (value < low || value > high) return std::nullopt;
  return value;
}

// A size in bytes as people write it: "65536", "64K", "64KB", "64KiB", "4M", "1G" (binary
// multiples; a trailing B is optional). Nothing for anything else: no digits, a sign,
// another unit, or a value past 2^64.
inline std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::uint64_t value = 0;
  std::size_t at = 0;
  for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at) {
    if (__builtin_mul_overflow(value, 10u, &value) ||
        __builtin_add_overflow(value, static_cast<unsigned>(text[at] - '0'), &value)) {
      return std::nullopt;
    }
  }
  if (at == 0) return std::nullopt;
  std::string_view unit = text.substr(at);
  if (unit.size() > 1 && unit.back() == 'B') unit.remove_suffix(unit.size() == 3 && unit[1] == 'i' ? 2 : 1);
  int shift = 0;
  if (unit == "K") shift = 10;
  else if (unit == "M") shift = 20;
  else if (unit == "G") shift = 30;
  else if (!unit.empty() && unit != "B") return std::nullopt;
  if (shift && value > (UINT64_MAX >> shift)) return std::nullopt;
  return value << shift;
}

// Rows of cells in left-aligned columns, each as wide as its widest cell, two spaces
// apart, with no trailing blanks.
inline void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
}


}  // namespace cohort
