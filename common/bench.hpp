// common/bench.hpp — what every `cohort bench <area>` shares: taking repeated samples with
// warm-up, their median and spread, and the report that prints them: named tables of named
// columns, as aligned text for people (nccl-tests' layout) and as JSON of the same shape
// for programs.
//
//   # cohort bench topo: runs 200, fixtures tests/topology/fixtures
//   #
//   # medians of alternating runs, against hwloc loading the same XML
//   # case       call            median  spread  ratio
//   #                               (ms)     (%)
//     DGX-style  hwloc XML load    2.21     3.1   1.000
//   #
//   # slowest load : 3.626 ms (target < 20 ms: met)
//
//   {"bench":"topo","context":{"runs":200,…},"tables":[{"name":"load","title":"medians …",
//    "columns":[{"name":"case","unit":""},…],"rows":[{"case":"DGX-style",…}]}],
//    "summary":{"slowest_load_ms":3.626},"notes":[]}
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <iosfwd>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/json.hpp"

namespace cohort::bench {

// ---- measuring ----------------------------------------------------------------------

// Seconds since `start` on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);
// Seconds one call of `body` takes.
double seconds(const std::function<void()>& body);

// Repeated samples of one thing.
struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
  int count = 0;
  // (max - min) / median: how far the samples spread, as a fraction of their median.
  double spread() const { return median != 0 ? (max - min) / median : 0; }
};

// `samples` must not be empty.
Summary summarize(const std::vector<double>& samples);

struct Repetitions {
  int warmup = 1;  // rounds run first and not kept
  int runs = 5;    // rounds kept
};

// One sample of each measure a round, the measures one after another, so that whatever
// else the machine does weighs on all of them alike. A measure returns its sample: a time,
// a rate, whatever it measures.
std::vector<Summary> alternate(const Repetitions& repetitions, const std::vector<std::function<double()>>& measures);

// ---- reporting ----------------------------------------------------------------------

// A column of a result table: its name is the header in the text and the key in JSON.
// Numbers are right-aligned, text left-aligned; a null value shows as "-".
// Every member has a default, so that designated initializers may leave any out.
struct Column {
  std::string name = {};
  std::string unit = {};  // shown in brackets under the name: "us", "GB/s"
  int digits = 2;     // after the point, for fractional numbers; -1: 4 significant digits
  bool text = false;  // a column of words, not numbers
  int width = 0;      // at least this wide: a table whose columns all have one streams its rows
};

// A number for a table or a figure: null for what JSON cannot hold (a ratio to nothing).
json::Value number(double value);

class Table {
 public:
  Table(std::string name, std::string title, std::vector<Column> columns);
  // One value per column.
  void add(std::vector<json::Value> row);
  const std::vector<std::vector<json::Value>>& rows() const { return rows_; }

 private:
  friend class Report;
  bool fixed() const;  // every column has a width: rows may be printed as they come
  void print_head(std::ostream& out);
  void print_rows(std::ostream& out);
  json::Value to_json() const;

  std::string name_, title_;
  std::vector<Column> columns_;
  std::vector<std::vector<json::Value>> rows_;
  std::vector<std::size_t> widths_;  // fixed when the head is printed
  std::size_t printed_ = 0;          // rows printed so far
  std::ostream* live_ = nullptr;     // where rows go as they are added
};

// One value that sums a run up: "# Avg bus bandwidth : 0.529 GB/s". The name is its key in
// the JSON summary and carries the unit there: "avg_busbw_GBps".
struct Figure {
  std::string name = {};
  std::string label = {};
  json::Value value = {};
  std::string unit = {};
  int digits = 2;
  std::string note = {};  // after the value in the text: "OK", "(target < 20 ms: met)"
};

// A file installed with cohort's commands, by its path under the prefix: the build tree
// and an install both put bin/cohort-bench beside share/cohort/bench/, so
// installed("share/cohort/bench/serve.py") finds the script wherever the tool runs from.
std::filesystem::path installed(const std::filesystem::path& relative);

class Report {
 public:
  explicit Report(std::string area);
  Report(const Report&) = delete;
  Report& operator=(const Report&) = delete;

  // What was run and how (ranks, sizes, the baseline): the text's first line.
  void context(std::string name, json::Value value);
  Table& table(std::string name, std::string title, std::vector<Column> columns);
  void figure(Figure figure);
  void note(std::string line);
  // Adds what a benchmark written as a script measured (a Python one, where the baselines are
  // Python programs): the JSON it wrote, {"context": {…}, "tables": [{"name", "title",
  // "columns": [{"name", "unit", "digits", "text"}], "rows": [[value per column], …]}],
  // "figures": [{"name", "label", "value", "unit", "digits", "note"}], "notes": ["…"]}. Throws
  // cohort::Error naming `source` and the member when the JSON is not of that shape.
  void add_results(const json::Value& results, const std::string& source);
  // Runs such a script to its end and adds what it wrote: `argv` with "--out FILE" after it,
  // FILE in a private temporary folder removed afterwards; its progress goes to stderr as
  // it comes. `environment` is the script's whole environment (unset: this process's).
  // Throws cohort::Error naming `source` when it fails or writes nothing.
  void add_script_results(std::vector<std::string> argv, const std::string& source,
                          const std::optional<std::vector<std::string>>& environment = std::nullopt);

  // From now on the text goes to `out` as it comes: the first line at once, then each table
  // when the next is made; or, when the table gives every column a width, its head when it
  // is made and each row when it is added.
  void stream(std::ostream& out);
  // Prints what has not been printed yet, as text, or the whole report as one line of JSON.
  void print(std::ostream& out, bool as_json);
  json::Value to_json() const;

 private:
  void print_context(std::ostream& out);
  void print_tables(std::ostream& out);  // what of them is not printed yet

  std::string area_;
  json::Value context_ = json::Value::object();
  std::deque<Table> tables_;  // a deque: references to its tables stay valid
  std::vector<Figure> figures_;
  std::vector<std::string> notes_;
  std::ostream* live_ = nullptr;
  bool context_printed_ = false;
};

}  // namespace cohort::bench
