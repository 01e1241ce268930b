// common/text.hpp — lists in text: "0,2,3" and back.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cohort {

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

}  // namespace cohort
