// The benchmark harness every `cohort bench` area shares: samples, summaries, and one
// report printed as a table and as JSON of the same shape.
#include "common/bench.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "common/error.hpp"
#include "common/json.hpp"

namespace cohort::bench {
namespace {

TEST(Bench, ASummaryHoldsTheMedianAndHowFarTheSamplesSpread) {
  const Summary s = summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 4);
  EXPECT_EQ(s.count, 4);
  EXPECT_DOUBLE_EQ(s.spread(), 3 / 2.5);
  EXPECT_DOUBLE_EQ(summarize({7}).spread(), 0);
  EXPECT_THROW(summarize({}), Error);
}

TEST(Bench, MeasuresAlternateRoundByRoundAndWarmUpRoundsAreNotKept) {
  std::string order;
  int a = 0, b = 100;
  auto summaries = alternate({2, 3}, {[&] {
                                        order += 'a';
                                        return static_cast<double>(++a);
                                      },
                                      [&] {
                                        order += 'b';
                                        return static_cast<double>(++b);
                                      }});
  EXPECT_EQ(order, "ababababab");
  ASSERT_EQ(summaries.size(), 2u);
  EXPECT_EQ(summaries[0].count, 3);
  EXPECT_DOUBLE_EQ(summaries[0].min, 3);  // rounds 3, 4 and 5 are kept
  EXPECT_DOUBLE_EQ(summaries[1].median, 104);
  EXPECT_GE(seconds([] {}), 0.0);
}

// A report as an area makes one.
void fill(Report& report) {
  report.context("ranks", 2);
  report.context("backend", "mpi");
  auto& table = report.table("sweep", "one row a size", {{.name = "size", .unit = "B"},
                                                         {.name = "type", .text = true},
                                                         {.name = "time", .unit = "us", .digits = 2},
                                                         {.name = "speedup", .digits = 3}});
  table.add({8, "float32", 12.3456, 1.5});
  table.add({1048576, "bf16", 1234.5, number(1.0 / 0.0)});
  report.figure({"wrong", "Out of bounds values", 0, "", 0, "OK"});
  report.figure({"avg_busbw_GBps", "Avg bus bandwidth", 0.5294, "GB/s", 3});
  report.note("checkpoint kept in /tmp/x");
}

TEST(Bench, TheTextIsAnAlignedTableWithUnitsUnderTheNamesAndFiguresBelow) {
  Report report("collectives");
  fill(report);
  std::ostringstream out;
  report.print(out, false);
  EXPECT_EQ(out.str(),
            "# cohort bench collectives: ranks 2, backend mpi\n"
            "#\n"
            "# one row a size\n"
            "#    size  type        time  speedup\n"
            "#     (B)              (us)\n"
            "        8  float32    12.35    1.500\n"
            "  1048576  bf16     1234.50        -\n"
            "# Out of bounds values : 0 OK\n"
            "# Avg bus bandwidth    : 0.529 GB/s\n"
            "# checkpoint kept in /tmp/x\n");
}

TEST(Bench, TheJsonHasTheSameTablesColumnsAndFigures) {
  Report report("collectives");
  fill(report);
  std::ostringstream out;
  report.print(out, true);
  const json::Value j = json::parse(out.str());
  EXPECT_EQ(out.str().find('\n'), out.str().size() - 1) << "one line";
  EXPECT_EQ(j.at("bench").as_string(), "collectives");
  EXPECT_EQ(j.at("context").at("ranks").as_int(), 2);
  const auto& table = j.at("tables").as_array().at(0);
  EXPECT_EQ(table.at("name").as_string(), "sweep");
  EXPECT_EQ(table.at("title").as_string(), "one row a size");
  EXPECT_EQ(table.at("columns").as_array().at(2).at("unit").as_string(), "us");
  const auto& rows = table.at("rows").as_array();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].at("size").as_int(), 1048576);
  EXPECT_EQ(rows[0].at("type").as_string(), "float32");
  EXPECT_DOUBLE_EQ(rows[0].at("time").as_double(), 12.3456);
  EXPECT_TRUE(rows[1].at("speedup").is_null());
  EXPECT_EQ(j.at("summary").at("wrong").as_int(), 0);
  EXPECT_DOUBLE_EQ(j.at("summary").at("avg_busbw_GBps").as_double(), 0.5294);
  EXPECT_EQ(j.at("notes").as_array().at(0).as_string(), "checkpoint kept in /tmp/x");
}

TEST(Bench, AStreamedReportPrintsRowsAsTheyComeInColumnsOfTheirGivenWidth) {
  Report report("demo");
  report.context("runs", 3);
  std::ostringstream out;
  report.stream(out);
  EXPECT_EQ(out.str(), "# cohort bench demo: runs 3\n");
  auto& table = report.table("t", "", {{.name = "n", .width = 6}, {.name = "what", .text = true, .width = 8}});
  EXPECT_EQ(out.str(), "# cohort bench demo: runs 3\n#\n#      n  what\n");
  table.add({1, "one"});
  EXPECT_EQ(out.str(), "# cohort bench demo: runs 3\n#\n#      n  what\n       1  one\n");
  report.figure({"done", "done", true, "", 0, ""});
  report.print(out, false);
  EXPECT_EQ(out.str(), "# cohort bench demo: runs 3\n#\n#      n  what\n       1  one\n# done : yes\n");
}

TEST(Bench, ARowOfTheWrongLengthIsRefused) {
  Report report("demo");
  auto& table = report.table("t", "", {{.name = "a"}, {.name = "b"}});
  EXPECT_THROW(table.add({1}), Error);
}

TEST(Bench, AScriptsResultsPrintAsTheSameReportWouldHadItBeenBuiltHere) {
  Report built("collectives");
  fill(built);
  const json::Value results = json::parse(R"({
    "context": {"ranks": 2, "backend": "mpi"},
    "tables": [{"name": "sweep", "title": "one row a size",
                "columns": [{"name": "size", "unit": "B"}, {"name": "type", "text": true},
                            {"name": "time", "unit": "us", "digits": 2}, {"name": "speedup", "digits": 3}],
                "rows": [[8, "float32", 12.3456, 1.5], [1048576, "bf16", 1234.5, null]]}],
    "figures": [{"name": "wrong", "label": "Out of bounds values", "value": 0, "digits": 0, "note": "OK"},
                {"name": "avg_busbw_GBps", "label": "Avg bus bandwidth", "value": 0.5294, "unit": "GB/s",
                 "digits": 3}],
    "notes": ["checkpoint kept in /tmp/x"]})");
  Report added("collectives");
  added.add_results(results, "script.json");
  std::ostringstream a, b;
  built.print(a, false);
  added.print(b, false);
  EXPECT_EQ(b.str(), a.str());
  EXPECT_EQ(json::write(added.to_json()), json::write(built.to_json()));
}

TEST(Bench, AScriptsResultsOfTheWrongShapeAreAnErrorNamingTheScriptAndTheMember) {
  const std::pair<const char*, const char*> cases[] = {
      {"[]", "results.json: is not a JSON object"},
      {R"({"context": {}})", "results.json: has no member 'tables'"},
      {R"({"tables": [{"name": "t", "columns": [{"name": "a"}], "rows": [[1, 2]]}]})",
       "results.json.tables[t]: a row does not have one value per column"},
      {R"({"tables": [{"name": "t", "columns": [{"name": "a", "digits": 99}], "rows": []}]})",
       "results.json.tables[t].digits"},
      {R"({"tables": [], "figures": [{"name": "x"}]})", "results.json.figures: has no member 'value'"},
  };
  for (const auto& [text, words] : cases) {
    Report report("x");
    try {
      report.add_results(json::parse(text), "results.json");
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace cohort::bench
