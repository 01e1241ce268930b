#include "common/options.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "common/text.hpp"

namespace cohort::options {
namespace {

// The operands' hidden option: Boost hands positional arguments to a named option.
constexpr const char* kOperands = "cohort-operands";

// Usage lines, each "cohort NAME FORM", the first after "usage: "; a form's further lines
// (after a newline in it) line up under its first.
void print_usage(std::ostream& out, const Help& help) {
  bool first = true;
  for (const auto& form : help.usage) {
    const std::string lead = (first ? "usage: cohort " : "       cohort ") + help.name + " ";
    std::size_t at = 0;
    for (std::string_view line : split(form, '\n')) {
      out << (at++ ? std::string(lead.size(), ' ') : lead) << line << "\n";
    }
    first = false;
  }
  if (help.usage.empty()) out << "usage: cohort " << help.name << "\n";
  if (!help.description.empty()) {
    out << "\n" << help.description << (help.description.back() == '\n' ? "" : "\n");
  }
}

void print_examples(std::ostream& out, const Help& help) {
  if (help.examples.empty()) return;
  out << "\nexample:\n";
  for (const auto& line : help.examples) out << "  " << line << "\n";
}

}  // namespace

Parser::Parser(Help help) : help_(std::move(help)) {
  shown_.add_options()("help,h", "show this help");
}

po::options_description_easy_init Parser::add() { return shown_.add_options(); }

void Parser::add(const po::options_description& group) { groups_.push_back(group); }

po::options_description_easy_init Parser::add_hidden() { return hidden_.add_options(); }

Parser& Parser::operands(int max) {
  max_operands_ = max;
  return *this;
}

Parser& Parser::pass_on() {
  pass_on_ = true;
  return *this;
}

std::optional<Parsed> Parser::parse(const std::vector<std::string>& args) const {
  for (const auto& arg : args) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      print_help(std::cout);
      return std::nullopt;
    }
  }
  po::options_description all;
  all.add(shown_);
  for (const auto& group : groups_) all.add(group);
  all.add(hidden_);
  all.add_options()(kOperands, po::value<std::vector<std::string>>());
  po::positional_options_description positional;
  positional.add(kOperands, -1);
  Parsed out;
  try {
    auto parser = po::command_line_parser(args).options(all).positional(positional);
    if (pass_on_) parser.allow_unregistered();
    po::parsed_options parsed = parser.run();
    if (pass_on_) {
      // In their order: the first operand is the command's; everything else goes on.
      for (auto& token : po::collect_unrecognized(parsed.options, po::include_positional)) {
        const bool operand = !token.empty() && token[0] != '-';
        (operand && out.operands.empty() ? out.operands : out.passed_on).push_back(std::move(token));
      }
    }
    po::store(parsed, out.values);
    po::notify(out.values);
  } catch (const po::error& e) {
    throw usage_error(e.what());
  }
  if (!pass_on_ && out.has(kOperands)) out.operands = out.values[kOperands].as<std::vector<std::string>>();
  if (max_operands_ >= 0 && out.operands.size() > static_cast<std::size_t>(max_operands_)) {
    throw usage_error("unexpected argument '" + out.operands[static_cast<std::size_t>(max_operands_)] + "'");
  }
  return out;
}

void Parser::print_help(std::ostream& out) const {
  print_usage(out, help_);
  // One description holding every group, so that all descriptions start in one column.
  po::options_description all("options");
  all.add(shown_);
  for (const auto& group : groups_) all.add(group);
  std::ostringstream stream;
  stream << all;
  const std::string text = stream.str();
  out << "\n";
  for (std::string_view line : split(text, '\n')) {
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);  // Boost's wrapping leaves one
    if (!line.empty()) out << line << "\n";
  }
  print_examples(out, help_);
}

Error Parser::usage_error(const std::string& message) const {
  return input_error(message + " (see 'cohort " + help_.name + " --help')");
}

long long whole_number(const std::string& option, const std::string& text, long long low, long long high) {
  const auto value = parse_integer(text, low, high);
  if (!value) {
    throw input_error(option + " " + text + ": expected a whole number from " + std::to_string(low) + " to " +
                      std::to_string(high));
  }
  return *value;
}

std::uint64_t byte_size(const std::string& option, const std::string& text, std::uint64_t low) {
  const auto bytes = parse_byte_size(text);
  if (!bytes) {
    throw input_error(option + " " + text + ": expected a size in bytes with an optional K, M or G, such as 4096, "
                      "64K or 1G");
  }
  if (*bytes < low) throw input_error(option + " " + text + ": must be at least " + std::to_string(low) + " B");
  return *bytes;
}

void print_help(std::ostream& out, const Dispatch& command) {
  print_usage(out, command.help);
  out << "\n" << command.kind << "s:\n";
  // Summaries start in one column, two spaces after the longest synopsis up to a limit; a
  // longer synopsis puts its summary on the next line.
  constexpr std::size_t kWidest = 40;
  std::vector<std::string> lefts;
  std::size_t column = 0;
  for (const auto& sub : command.table) {
    lefts.push_back("  " + std::string(sub.name) + (sub.synopsis.empty() ? "" : " ") + std::string(sub.synopsis));
    column = std::min(kWidest, std::max(column, lefts.back().size() + 2));
  }
  for (std::size_t i = 0; i < lefts.size(); ++i) {
    const std::string& left = lefts[i];
    const std::string_view summary = command.table[i].summary;
    if (left.size() + 2 > column) {
      out << left << "\n" << std::string(column, ' ') << summary << "\n";
    } else {
      out << left << std::string(column - left.size(), ' ') << summary << "\n";
    }
  }
  print_examples(out, command.help);
}

int dispatch(const Dispatch& command, const std::vector<std::string>& args) {
  if (args.empty()) {
    print_help(std::cerr, command);
    return 2;
  }
  const std::string& name = args[0];
  if (name == "help" || name == "--help" || name == "-h") {
    print_help(std::cout, command);
    return 0;
  }
  const auto& table = command.table;
  const auto found = std::find_if(table.begin(), table.end(), [&](const Subcommand& s) { return s.name == name; });
  if (found == table.end()) {
    std::vector<std::string> names;
    for (const auto& sub : table) names.emplace_back(sub.name);
    throw input_error("unknown " + std::string(command.kind) + " '" + name + "' (" + std::string(command.kind) +
                      "s: " + join(names, ", ") + "; see 'cohort " + command.help.name + " --help')");
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (!command.prefix_errors) return found->run(rest);
  try {
    return found->run(rest);
  } catch (const Error& e) {
    throw Error(name + ": " + e.what(), e.kind());
  }
}

}  // namespace cohort::options
