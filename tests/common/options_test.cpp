// Options as every command reads them: one help layout, one kind of usage error.
#include "common/options.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

namespace cohort::options {
namespace {

Parser demo_parser(std::string* dir, int* count) {
  Parser parser({"demo run", {"EXP.yaml --dir D", "--list"}, "Runs the demo.", {"cohort demo run x.yaml --dir /tmp/d"}});
  parser.add()("dir,d", po::value(dir)->value_name("D"), "where it runs")(
      "count", po::value(count)->default_value(3), "how many");
  parser.operands(1);
  return parser;
}

std::string message_of(const std::function<void()>& call, ErrorKind want = ErrorKind::input) {
  try {
    call();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), want) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Options, HelpShowsUsageDescriptionOptionsAndExampleInThatOrder) {
  std::string dir;
  int count = 0;
  std::ostringstream out;
  demo_parser(&dir, &count).print_help(out);
  const std::string help = out.str();
  EXPECT_EQ(help.rfind("usage: cohort demo run EXP.yaml --dir D\n       cohort demo run --list\n\nRuns the demo.\n\n"
                       "options:\n",
                       0),
            0u)
      << help;
  EXPECT_NE(help.find("  -d [ --dir ] D"), std::string::npos) << help;
  EXPECT_NE(help.find("  -h [ --help ]"), std::string::npos) << help;
  EXPECT_NE(help.find("\nexample:\n  cohort demo run x.yaml --dir /tmp/d\n"), std::string::npos) << help;
  EXPECT_EQ(help.back(), '\n');
}

TEST(Options, HelpAnywhereWinsOverEverythingElse) {
  std::string dir;
  int count = 0;
  std::ostringstream out;
  auto* old = std::cout.rdbuf(out.rdbuf());
  auto parsed = demo_parser(&dir, &count).parse({"--frobnicate", "a", "b", "-h"});
  std::cout.rdbuf(old);
  EXPECT_FALSE(parsed);
  EXPECT_EQ(out.str().rfind("usage: cohort demo run", 0), 0u) << out.str();
}

TEST(Options, ValuesOperandsAndDefaultsAreRead) {
  std::string dir;
  int count = 0;
  auto parsed = demo_parser(&dir, &count).parse({"x.yaml", "--dir=/tmp/d"});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(dir, "/tmp/d");
  EXPECT_EQ(count, 3);
  EXPECT_EQ(parsed->operands, std::vector<std::string>{"x.yaml"});
  EXPECT_TRUE(parsed->has("dir"));
  EXPECT_TRUE(demo_parser(&dir, &count).parse({"-d", "/e", "--count", "7"}));
  EXPECT_EQ(dir, "/e");
  EXPECT_EQ(count, 7);
}

TEST(Options, WhatBoostCannotReadIsAUsageErrorPointingAtTheHelp) {
  std::string dir;
  int count = 0;
  auto parser = demo_parser(&dir, &count);
  EXPECT_EQ(message_of([&] { parser.parse({"--frobnicate"}); }),
            "unrecognised option '--frobnicate' (see 'cohort demo run --help')");
  EXPECT_EQ(message_of([&] { parser.parse({"--count", "many"}); }),
            "the argument ('many') for option '--count' is invalid (see 'cohort demo run --help')");
  EXPECT_EQ(message_of([&] { parser.parse({"--dir"}); }),
            "the required argument for option '--dir' is missing (see 'cohort demo run --help')");
  EXPECT_EQ(message_of([&] { parser.parse({"a.yaml", "b.yaml"}); }),
            "unexpected argument 'b.yaml' (see 'cohort demo run --help')");
}

TEST(Options, PassOnKeepsUnknownOptionsAndTheirValuesInOrder) {
  std::string dir;
  int count = 0;
  auto parser = demo_parser(&dir, &count);
  parser.pass_on();
  auto parsed = parser.parse({"exp.yaml", "--partition", "gpu", "--dir", "/d", "-N", "2", "-n1", "--array=0-3"});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(dir, "/d");
  EXPECT_EQ(parsed->operands, std::vector<std::string>{"exp.yaml"});
  EXPECT_EQ(parsed->passed_on, (std::vector<std::string>{"--partition", "gpu", "-N", "2", "-n1", "--array=0-3"}));
}

TEST(Options, NumbersAndSizesNameTheOptionAndWhatWouldBeRight) {
  EXPECT_EQ(whole_number("--iters", "20", 1, 100), 20);
  EXPECT_EQ(message_of([] { whole_number("--iters", "abc", 1, 100); }),
            "--iters abc: expected a whole number from 1 to 100");
  EXPECT_EQ(message_of([] { whole_number("--iters", "0", 1, 100); }),
            "--iters 0: expected a whole number from 1 to 100");
  EXPECT_EQ(byte_size("--bytes", "64K"), 64u << 10);
  EXPECT_EQ(message_of([] { byte_size("--bytes", "lots"); }),
            "--bytes lots: expected a size in bytes with an optional K, M or G, such as 4096, 64K or 1G");
  EXPECT_EQ(message_of([] { byte_size("--bytes", "0", 1); }), "--bytes 0: must be at least 1 B");
}

int ok_verb(const std::vector<std::string>& args) { return static_cast<int>(args.size()); }
int bad_verb(const std::vector<std::string>&) { throw input_error("--x 1: must be 2"); }

constexpr Subcommand kVerbs[] = {
    {"count", "[ARGS...]", "counts its arguments", &ok_verb},
    {"refuse", "--x N", "refuses", &bad_verb},
    {"with-a-long-name", "--and-a-long-synopsis VALUE", "summary on the next line", &ok_verb},
};

TEST(Options, SubcommandsAreListedAndRunByName) {
  Dispatch command{{"demo", {"<verb> [args]"}, "Demonstrates.", {"cohort demo count a b"}}, "verb", kVerbs};
  std::ostringstream out;
  print_help(out, command);
  EXPECT_EQ(out.str(),
            "usage: cohort demo <verb> [args]\n\nDemonstrates.\n\nverbs:\n"
            "  count [ARGS...]                       counts its arguments\n"
            "  refuse --x N                          refuses\n"
            "  with-a-long-name --and-a-long-synopsis VALUE\n"
            "                                        summary on the next line\n"
            "\nexample:\n  cohort demo count a b\n");
  EXPECT_EQ(dispatch(command, {"count", "a", "b"}), 2);
  EXPECT_EQ(message_of([&] { dispatch(command, {"refuse"}); }), "refuse: --x 1: must be 2");
  EXPECT_EQ(message_of([&] { dispatch(command, {"frobnicate"}); }),
            "unknown verb 'frobnicate' (verbs: count, refuse, with-a-long-name; see 'cohort demo --help')");
  command.prefix_errors = false;
  EXPECT_EQ(message_of([&] { dispatch(command, {"refuse"}); }), "--x 1: must be 2");
}

TEST(Options, NoSubcommandShowsTheHelpOnStderrAndIsAUsageError) {
  Dispatch command{{"demo", {"<verb> [args]"}, "Demonstrates.", {}}, "verb", kVerbs};
  std::ostringstream err;
  auto* old = std::cerr.rdbuf(err.rdbuf());
  const int status = dispatch(command, {});
  std::cerr.rdbuf(old);
  EXPECT_EQ(status, 2);
  EXPECT_EQ(err.str().rfind("usage: cohort demo", 0), 0u);
}

}  // namespace
}  // namespace cohort::options
