#include "launcher/hostlist.hpp"

#include <charconv>
#include <cstdint>

#include "common/error.hpp"

namespace cohort::launcher {
namespace {

constexpr size_t kMaxHosts = 1'000'000;

Error bad(std::string_view expression, const std::string& why) {
  return input_error("hostlist '" + std::string(expression) + "': " + why);
}

// Splits at commas that are not inside brackets.
std::vector<std::string_view> split_top_level(std::string_view expression) {
  std::vector<std::string_view> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < expression.size(); ++i) {
    char c = expression[i];
    if (c == '[') {
      if (++depth > 1) throw bad(expression, "nested '[' at position " + std::to_string(i));
    } else if (c == ']') {
      if (--depth < 0) throw bad(expression, "']' without '[' at position " + std::to_string(i));
    } else if (c == ',' && depth == 0) {
      parts.push_back(expression.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) throw bad(expression, "'[' is never closed");
  parts.push_back(expression.substr(start));
  return parts;
}

std::uint64_t parse_number(std::string_view expression, std::string_view digits) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    throw bad(expression, "'" + std::string(digits) + "' is not a number");
  }
  return value;
}

std::string padded(std::uint64_t value, size_t width) {
  std::string s = std::to_string(value);
  if (s.size() < width) s.insert(0, width - s.size(), '0');
  return s;
}

// The suffixes one bracket body stands for: "01-03,7" gives 01, 02, 03, 7.
std::vector<std::string> expand_ranges(std::string_view expression, std::string_view body) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= body.size()) {
    size_t comma = body.find(',', start);
    std::string_view item = body.substr(start, comma == std::string_view::npos ? body.npos : comma - start);
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      parse_number(expression, item);
      out.emplace_back(item);
    } else {
      std::string_view lo_text = item.substr(0, dash), hi_text = item.substr(dash + 1);
      std::uint64_t lo = parse_number(expression, lo_text), hi = parse_number(expression, hi_text);
      if (hi < lo) throw bad(expression, "range '" + std::string(item) + "' runs backwards");
      if (hi - lo >= kMaxHosts) throw bad(expression, "range '" + std::string(item) + "' is too large");
      // Slurm pads to the width of the lower bound when it has a leading zero.
      size_t width = lo_text.size() > 1 && lo_text[0] == '0' ? lo_text.size() : 0;
      for (std::uint64_t v = lo; v <= hi; ++v) out.push_back(padded(v, width));
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

std::vector<std::string> expand_hostlist(std::string_view expression) {
  std::vector<std::string> hosts;
  if (expression.empty()) return hosts;
  for (std::string_view part : split_top_level(expression)) {
    if (part.empty()) throw bad(expression, "empty name between commas");
    // Cartesian product of the literal pieces and bracket groups, left to right.
    std::vector<std::string> names{""};
    size_t pos = 0;
    while (pos < part.size()) {
      size_t open = part.find('[', pos);
      std::string_view literal = part.substr(pos, open == part.npos ? part.npos : open - pos);
      for (auto& n : names) n += literal;
      if (open == part.npos) break;
      size_t close = part.find(']', open);
      auto suffixes = expand_ranges(expression, part.substr(open + 1, close - open - 1));
      if (names.size() * suffixes.size() > kMaxHosts) throw bad(expression, "expands to too many names");
      std::vector<std::string> next;
      next.reserve(names.size() * suffixes.size());
      for (const auto& n : names)
        for (const auto& s : suffixes) next.push_back(n + s);
      names = std::move(next);
      pos = close + 1;
    }
    if (hosts.size() + names.size() > kMaxHosts) throw bad(expression, "expands to too many names");
    hosts.insert(hosts.end(), names.begin(), names.end());
  }
  return hosts;
}

std::string compress_hostlist(const std::vector<std::string>& hosts) {
  // Each name splits into a prefix and a trailing number; consecutive names with the same
  // prefix and width join one bracket group, as long as the order is kept.
  struct Split {
    std::string prefix;
    std::string digits;
  };
  auto split = [](const std::string& h) {
    size_t i = h.size();
    while (i > 0 && h[i - 1] >= '0' && h[i - 1] <= '9') --i;
    return Split{h.substr(0, i), h.substr(i)};
  };
  std::string out;
  size_t i = 0;
  while (i < hosts.size()) {
    Split first = split(hosts[i]);
    if (!out.empty()) out += ',';
    if (first.digits.empty()) {
      out += hosts[i++];
      continue;
    }
    // Gather the run of names sharing first's prefix (and digit width when padded).
    std::vector<std::pair<std::uint64_t, std::string>> run;
    size_t j = i;
    while (j < hosts.size()) {
      Split s = split(hosts[j]);
      bool padded_width = s.digits.size() > 1 && s.digits[0] == '0';
      bool first_padded = first.digits.size() > 1 && first.digits[0] == '0';
      if (s.prefix != first.prefix || s.digits.empty() || s.digits.size() > 18) break;
      if ((padded_width || first_padded) && s.digits.size() != first.digits.size()) break;
      run.emplace_back(std::stoull(s.digits), s.digits);
      ++j;
    }
    if (run.size() == 1) {
      out += hosts[i];
      i = j;
      continue;
    }
    out += first.prefix + "[";
    for (size_t k = 0; k < run.size();) {
      size_t end = k;
      while (end + 1 < run.size() && run[end + 1].first == run[end].first + 1) ++end;
      if (k > 0) out += ',';
      out += run[k].second;
      if (end > k) out += "-" + run[end].second;
      k = end + 1;
    }
    out += "]";
    i = j;
  }
  return out;
}

std::vector<int> expand_tasks_per_node(std::string_view counts) {
  std::vector<int> out;
  size_t start = 0;
  while (start < counts.size()) {
    size_t comma = counts.find(',', start);
    std::string_view item = counts.substr(start, comma == counts.npos ? counts.npos : comma - start);
    std::uint64_t repeat = 1;
    size_t paren = item.find("(x");
    std::string_view count_text = item.substr(0, paren);
    if (paren != item.npos) {
      if (item.back() != ')') throw input_error("tasks per node '" + std::string(counts) + "': expected N(xM)");
      repeat = parse_number(counts, item.substr(paren + 2, item.size() - paren - 3));
    }
    auto count = parse_number(counts, count_text);
    if (repeat > kMaxHosts || out.size() + repeat > kMaxHosts) {
      throw input_error("tasks per node '" + std::string(counts) + "': too many nodes");
    }
    out.insert(out.end(), repeat, static_cast<int>(count));
    if (comma == counts.npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace cohort::launcher
