// common/yaml_reader: documents are read within bounds, aliases included.
#include "common/yaml_reader.hpp"

#include <gtest/gtest.h>

#include <string>

#include "common/error.hpp"

namespace cohort::yaml {
namespace {

std::string error_of(const std::string& text) {
  try {
    Reader("exp.yaml").load(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "(no error)";
}

// One long value repeated through aliases: a small file standing for 3 GB once read.
TEST(YamlReader, AliasesRepeatingLongTextPastTheBoundAreRefused) {
  std::string doc = "value: &v \"" + std::string(1 << 20, 'x') + "\"\ncommand: [";
  for (int i = 0; i < 3000; ++i) doc += i ? ", *v" : "*v";
  doc += "]\n";
  EXPECT_EQ(error_of(doc),
            "exp.yaml: more than 16 MiB of text once its aliases (*name) are expanded; write the document without "
            "repeating aliases");
}

// Nested aliases ("billion laughs"): ten levels of ten stand for 10^10 values.
TEST(YamlReader, NestedAliasesPastTheBoundAreRefused) {
  std::string doc = "l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n";
  for (int level = 1; level < 10; ++level) {
    const std::string prev = "*l" + std::to_string(level - 1);
    doc += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) doc += (i ? ", " : "") + prev;
    doc += "]\n";
  }
  EXPECT_EQ(error_of(doc),
            "exp.yaml: more than 100000 values once its aliases (*name) are expanded; write the document without "
            "repeating aliases");
}

TEST(YamlReader, AnAliasThatContainsItselfIsRefusedNotWalkedForEver) {
  EXPECT_NE(error_of("a: &a [x, *a]\n").find("once its aliases (*name) are expanded"), std::string::npos)
      << error_of("a: &a [x, *a]\n");
}

TEST(YamlReader, AliasesWithinTheBoundsReadAsTheirValues) {
  YAML::Node doc = Reader("exp.yaml").load("base: &b {cpus: 4}\nworker: *b\nlist: [&x 1, *x, *x]\n");
  EXPECT_EQ(doc["worker"]["cpus"].as<int>(), 4);
  EXPECT_EQ(doc["list"].size(), 3u);
}

TEST(YamlReader, ADocumentLargerThanTheBoundIsRefusedBeforeParsing) {
  EXPECT_EQ(error_of("# " + std::string(17 << 20, 'x') + "\n"), "exp.yaml: 17825795 bytes; a spec has at most 16 MiB");
}

}  // namespace
}  // namespace cohort::yaml
