// common/options.hpp — how every `cohort` command reads its arguments: Boost.Program_options
// for the options, one layout for `--help`, and one kind of usage error.
//
//   options::Parser parser({"topo plan", {"--ranks N [options]"}, "Plans N local ranks: …",
//                           {"cohort topo plan --ranks 8"}});
//   parser.add()("ranks", po::value<int>()->value_name("N"), "local ranks to place");
//   auto parsed = parser.parse(args);
//   if (!parsed) return 0;  // --help was asked for, and printed
//
// `--help` (or `-h`) anywhere before `--` prints the help, whatever else is there. Anything
// Boost cannot read, an operand too many, and a bad number or size is a cohort::Error of
// kind input (exit 2): one line naming the option and pointing at `cohort NAME --help`.
#pragma once

#include <boost/program_options.hpp>

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace cohort::options {

namespace po = boost::program_options;

// What `--help` prints, in this order: the usage lines, the description, each group of
// options, the examples.
struct Help {
  std::string name;                   // what is typed after `cohort`: "topo plan"
  std::vector<std::string> usage;     // after "cohort NAME ": one form of the command a line
  std::string description;            // paragraphs, as printed
  std::vector<std::string> examples;  // command lines, printed under "example:"
};

struct Parsed {
  po::variables_map values;
  std::vector<std::string> operands;   // the arguments that are no option, in order
  std::vector<std::string> passed_on;  // with Parser::pass_on: options for another program

  bool has(const std::string& name) const { return values.count(name) > 0; }
};

class Parser {
 public:
  explicit Parser(Help help);

  // Options shown by --help, under "options:".
  po::options_description_easy_init add();
  // Another titled group of options, shown after the first.
  void add(const po::options_description& group);
  // Options accepted but not shown (those a command gives itself).
  po::options_description_easy_init add_hidden();
  // At most `max` operands (no limit when negative); more is a usage error naming the first
  // one too many.
  Parser& operands(int max);
  // Options the command does not know, with what follows them up to the next option, are
  // kept in Parsed::passed_on in their order instead of being an error (sbatch's options
  // after `cohort sweep submit`). The first operand stays in Parsed::operands.
  Parser& pass_on();

  // Nothing when --help was given: the help has been printed to stdout.
  std::optional<Parsed> parse(const std::vector<std::string>& args) const;
  void print_help(std::ostream& out) const;
  // "MESSAGE (see 'cohort NAME --help')", as an input error.
  Error usage_error(const std::string& message) const;

 private:
  Help help_;
  po::options_description shown_;
  std::vector<po::options_description> groups_;
  po::options_description hidden_;
  int max_operands_ = 0;
  bool pass_on_ = false;
};

// Values as options give them. Each throws an input error "OPTION TEXT: expected …" that
// says what would be right.
long long whole_number(const std::string& option, const std::string& text, long long low, long long high);
// Bytes with an optional K, M or G (binary multiples): 8, 64K, 1G; at least `low`.
std::uint64_t byte_size(const std::string& option, const std::string& text, std::uint64_t low = 0);

// A command of verbs (`cohort ckpt ls`), or of benchmark areas (`cohort bench topo`): one
// entry a subcommand, run with the arguments after its name.
struct Subcommand {
  std::string_view name;
  std::string_view synopsis;  // what follows the name, for the list: "DIR [--json]"
  std::string_view summary;   // one line
  int (*run)(const std::vector<std::string>& args);
};

struct Dispatch {
  Help help;                 // the command's own: usage, description and examples
  std::string_view kind;     // "verb" or "area": the list's title and the word in errors
  std::span<const Subcommand> table;
  // Errors of a subcommand are prefixed with its name: "ckpt: prune: --keep-last 0: …".
  bool prefix_errors = true;
};

// Runs the subcommand args[0] names. No arguments prints the help to stderr and returns 2;
// `help`, `--help` or `-h` prints it to stdout; an unknown name is a usage error listing
// the known ones.
int dispatch(const Dispatch& command, const std::vector<std::string>& args);
void print_help(std::ostream& out, const Dispatch& command);

}  // namespace cohort::options
