// Slurm's hostlist grammar, written here rather than taken from libslurm's slurm_hostlist_*:
// - The cohort executable runs where Slurm is not installed (`cohort launch --local`, a
//   laptop, a CI runner) and links nothing of Slurm's; the SPANK plugin does not link
//   libslurm either, it takes Slurm's symbols from the daemon that loads it.
// - libslurm is tied to the Slurm it came with: its soname changes with every release
//   (libslurm.so.38 is 22.05's) and its API with some (hostlist_t stopped being a pointer
//   type in 23.x), so a cohort built against one Slurm would not start, or not build, on
//   the next. Expanding and compressing names is not worth that coupling.
// - libslurm answers a malformed list with NULL and a line on stderr, or with a guess
//   ("n[1-3" is the one host "n]"); cohort's callers need an input error that names the
//   expression and what is wrong with it, and a bound on what a list may expand to.
// What Slurm does is pinned by tests/launcher/hostlist_test.cpp (HostlistAsSlurm): the
// vectors of Slurm's own unit tests and libslurm 22.05's answers for the forms Slurm writes.
#include "launcher/hostlist.hpp"

#include <charconv>
#include <cstdint>

#include "common/error.hpp"

namespace cohort::launcher {
namespace {

// As many names as a hostlist may stand for, Slurm's own node limit in spirit: far more
// than any cluster has, few enough that expanding them costs a few megabytes.
constexpr std::uint64_t kMaxHosts = 65536;
constexpr std::uint64_t kMaxTasksPerNode = 65536;

Error bad(std::string_view expression, const std::string& why) {
  // The expression comes from the environment and may be of any length.
  std::string shown(expression.substr(0, 256));
  if (expression.size() > 256) shown += "...";
  return input_error("hostlist '" + shown + "': " + why);
}

Error too_many(std::string_view expression) {
  return bad(expression, "expands to more than " + std::to_string(kMaxHosts) + " names (a hostlist names at most " +
                             std::to_string(kMaxHosts) + " hosts)");
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
  if (ec == std::errc::result_out_of_range) {
    throw bad(expression, "'" + std::string(digits.substr(0, 64)) + "' is larger than 18446744073709551615");
  }
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    throw bad(expression, "'" + std::string(digits.substr(0, 64)) + "' is not a number");
  }
  return value;
}

std::string padded(std::uint64_t value, size_t width) {
  std::string s = std::to_string(value);
  if (s.size() < width) s.insert(0, width - s.size(), '0');
  return s;
}

// One item of a bracket body: "7" (written as is) or the range "01-03".
struct Item {
  std::string_view text;  // a single number, kept as written
  std::uint64_t lo = 0, count = 1;
  size_t width = 0;       // zero padding of a range
  bool range = false;
};

// The items of one bracket body ("01-03,7"), and how many names they stand for, which is
// checked against the limit before anything is expanded.
std::vector<Item> parse_items(std::string_view expression, std::string_view body, std::uint64_t& names) {
  std::vector<Item> items;
  names = 0;
  size_t start = 0;
  while (start <= body.size()) {
    size_t comma = body.find(',', start);
    std::string_view text = body.substr(start, comma == std::string_view::npos ? body.npos : comma - start);
    Item item;
    item.text = text;
    size_t dash = text.find('-');
    if (dash == std::string_view::npos) {
      parse_number(expression, text);
    } else {
      std::string_view lo_text = text.substr(0, dash), hi_text = text.substr(dash + 1);
      std::uint64_t lo = parse_number(expression, lo_text), hi = parse_number(expression, hi_text);
      if (hi < lo) throw bad(expression, "range '" + std::string(text) + "' runs backwards");
      if (hi - lo >= kMaxHosts) throw too_many(expression);
      item.range = true;
      item.lo = lo;
      item.count = hi - lo + 1;
      // Slurm pads to the width of the lower bound when it has a leading zero.
      item.width = lo_text.size() > 1 && lo_text[0] == '0' ? lo_text.size() : 0;
    }
    names += item.count;
    if (names > kMaxHosts) throw too_many(expression);
    items.push_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return items;
}

void append_suffixes(const std::vector<Item>& items, std::vector<std::string>& out) {
  for (const auto& item : items) {
    if (!item.range) {
      out.emplace_back(item.text);
      continue;
    }
    // Counted rather than compared with the upper bound, which may be the largest uint64.
    for (std::uint64_t k = 0; k < item.count; ++k) out.push_back(padded(item.lo + k, item.width));
  }
}

}  // namespace

std::vector<std::string> expand_hostlist(std::string_view expression) {
  std::vector<std::string> hosts;
  if (expression.empty()) return hosts;
  const auto parts = split_top_level(expression);
  // Every part's size is known from its brackets alone: count them all before any name is
  // made, so that an expression standing for billions of names costs nothing to refuse.
  struct Piece {
    std::string_view literal;
    std::vector<Item> items;  // empty for the literal after the last bracket
  };
  std::vector<std::vector<Piece>> parsed;
  std::uint64_t total = 0;
  for (std::string_view part : parts) {
    if (part.empty()) throw bad(expression, "empty name between commas");
    std::vector<Piece> pieces;
    std::uint64_t names = 1;
    size_t pos = 0;
    while (pos < part.size()) {
      size_t open = part.find('[', pos);
      Piece piece{part.substr(pos, open == part.npos ? part.npos : open - pos), {}};
      if (open != part.npos) {
        size_t close = part.find(']', open);
        std::uint64_t count = 0;
        piece.items = parse_items(expression, part.substr(open + 1, close - open - 1), count);
        // Both factors are at most kMaxHosts, so the product cannot wrap.
        names *= count;
        if (names > kMaxHosts) throw too_many(expression);
        pos = close + 1;
      } else {
        pos = part.size();
      }
      pieces.push_back(std::move(piece));
    }
    total += names;
    if (total > kMaxHosts) throw too_many(expression);
    parsed.push_back(std::move(pieces));
  }
  hosts.reserve(total);
  for (const auto& pieces : parsed) {
    // Cartesian product of the literal pieces and bracket groups, left to right.
    std::vector<std::string> names{""};
    for (const auto& piece : pieces) {
      for (auto& n : names) n += piece.literal;
      if (piece.items.empty()) continue;
      std::vector<std::string> suffixes;
      append_suffixes(piece.items, suffixes);
      std::vector<std::string> next;
      next.reserve(names.size() * suffixes.size());
      for (const auto& n : names)
        for (const auto& s : suffixes) next.push_back(n + s);
      names = std::move(next);
    }
    hosts.insert(hosts.end(), std::make_move_iterator(names.begin()), std::make_move_iterator(names.end()));
  }
  return hosts;
}

std::string compress_hostlist(const std::vector<std::string>& hosts) {
  // Each name splits into a prefix and a trailing number; consecutive names with the same
  // prefix and width join one bracket group, as long as the order is kept.
  struct Split {
    std::string prefix;
    std::string digits;
    std::uint64_t value;
  };
  // A number past 2^64 cannot be written as a range Slurm (or expand_hostlist) reads back:
  // such a name stands alone, as if it had no digits.
  auto split = [](const std::string& h) {
    size_t i = h.size();
    while (i > 0 && h[i - 1] >= '0' && h[i - 1] <= '9') --i;
    Split s{h.substr(0, i), h.substr(i), 0};
    auto [end, ec] = std::from_chars(s.digits.data(), s.digits.data() + s.digits.size(), s.value);
    if (ec != std::errc()) s.digits.clear();
    return s;
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
      if (s.prefix != first.prefix || s.digits.empty()) break;
      if ((padded_width || first_padded) && s.digits.size() != first.digits.size()) break;
      run.emplace_back(s.value, s.digits);
      ++j;
    }
    if (run.size() == 1) {
      out += hosts[i];
      i = j;
      continue;
    }
    out += first.prefix + "[";
    for (size_t k = 0; k < run.size();) {
      // A range is written with its first number's padding, and expands with it: a name
      // joins only when that padding writes it as it is ("01" and "2" are not "01-02").
      const std::string& lo = run[k].second;
      const size_t width = lo.size() > 1 && lo[0] == '0' ? lo.size() : 0;
      size_t end = k;
      while (end + 1 < run.size() && run[end].first != UINT64_MAX && run[end + 1].first == run[end].first + 1 &&
             padded(run[end + 1].first, width) == run[end + 1].second) {
        ++end;
      }
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
      throw input_error("tasks per node '" + std::string(counts.substr(0, 256)) + "': more than " +
                        std::to_string(kMaxHosts) + " nodes");
    }
    // Checked before it is narrowed: 4294967298 tasks are not 2.
    if (count > kMaxTasksPerNode) {
      throw input_error("tasks per node '" + std::string(counts.substr(0, 256)) + "': " + std::to_string(count) +
                        " tasks on one node (at most " + std::to_string(kMaxTasksPerNode) + ")");
    }
    out.insert(out.end(), repeat, static_cast<int>(count));
    if (comma == counts.npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace cohort::launcher
