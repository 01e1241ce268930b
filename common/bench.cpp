#include "common/bench.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <ostream>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/scratch_dir.hpp"
#include "common/stats.hpp"

namespace cohort::bench {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double seconds(const std::function<void()>& body) {
  const auto start = std::chrono::steady_clock::now();
  body();
  return seconds_since(start);
}

Summary summarize(const std::vector<double>& samples) {
  if (samples.empty()) throw Error("bench: a summary of no samples (run at least once)");
  const auto [low, high] = std::minmax_element(samples.begin(), samples.end());
  return {median(samples), *low, *high, static_cast<int>(samples.size())};
}

std::vector<Summary> alternate(const Repetitions& repetitions, const std::vector<std::function<double()>>& measures) {
  std::vector<std::vector<double>> samples(measures.size());
  for (int round = 0; round < repetitions.warmup + repetitions.runs; ++round) {
    for (std::size_t m = 0; m < measures.size(); ++m) {
      const double sample = measures[m]();
      if (round >= repetitions.warmup) samples[m].push_back(sample);
    }
  }
  std::vector<Summary> out;
  for (const auto& s : samples) out.push_back(summarize(s));
  return out;
}

json::Value number(double value) { return std::isfinite(value) ? json::Value(value) : json::Value(); }

namespace {

std::string format_number(double value, int digits) {
  char text[64];
  if (digits < 0) {
    std::snprintf(text, sizeof text, "%.4g", value);
  } else {
    std::snprintf(text, sizeof text, "%.*f", digits, value);
  }
  return text;
}

std::string text_of(const json::Value& value, int digits) {
  if (value.is_null()) return "-";
  if (value.is_bool()) return value.as_bool() ? "yes" : "no";
  if (value.is_int()) return std::to_string(value.as_int());
  if (value.is_number()) return format_number(value.as_double(), digits);
  if (value.is_string()) return value.as_string();
  if (value.is_array()) {
    std::string out;
    for (const auto& item : value.as_array()) out += (out.empty() ? "" : ",") + text_of(item, digits);
    return out;
  }
  return json::write(value);
}

// Characters as a terminal shows them: UTF-8 continuation bytes take no room.
std::size_t display_width(const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// One line of cells, each padded to its column's width and two spaces apart, after a
// two-character lead ("# " for the head, blanks for rows); no trailing blanks.
void print_line(std::ostream& out, const char* lead, const std::vector<std::string>& cells,
                const std::vector<Column>& columns, const std::vector<std::size_t>& widths) {
  std::string line = lead;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const std::string pad(widths[i] - std::min(widths[i], display_width(cells[i])), ' ');
    line += (i ? "  " : "") + (columns[i].text ? cells[i] + pad : pad + cells[i]);
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out << line << "\n";
}

}  // namespace

Table::Table(std::string name, std::string title, std::vector<Column> columns)
    : name_(std::move(name)), title_(std::move(title)), columns_(std::move(columns)) {}

bool Table::fixed() const {
  return std::all_of(columns_.begin(), columns_.end(), [](const Column& c) { return c.width > 0; });
}

void Table::add(std::vector<json::Value> row) {
  if (row.size() != columns_.size()) {
    throw Error("bench: table " + name_ + ": a row of " + std::to_string(row.size()) + " values for " +
                std::to_string(columns_.size()) + " columns");
  }
  rows_.push_back(std::move(row));
  if (live_) {
    print_rows(*live_);
    live_->flush();
  }
}

void Table::print_head(std::ostream& out) {
  widths_.clear();
  bool units = false;
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    const Column& c = columns_[i];
    std::size_t width = std::max({static_cast<std::size_t>(std::max(c.width, 0)), display_width(c.name),
                                  c.unit.empty() ? 0 : display_width(c.unit) + 2});
    for (const auto& row : rows_) width = std::max(width, display_width(text_of(row[i], c.digits)));
    widths_.push_back(width);
    units = units || !c.unit.empty();
  }
  out << "#\n";
  if (!title_.empty()) out << "# " << title_ << "\n";
  std::vector<std::string> names, unit_cells;
  for (const auto& c : columns_) {
    names.push_back(c.name);
    unit_cells.push_back(c.unit.empty() ? "" : "(" + c.unit + ")");
  }
  print_line(out, "# ", names, columns_, widths_);
  if (units) print_line(out, "# ", unit_cells, columns_, widths_);
}

void Table::print_rows(std::ostream& out) {
  for (; printed_ < rows_.size(); ++printed_) {
    std::vector<std::string> cells;
    for (std::size_t i = 0; i < columns_.size(); ++i) cells.push_back(text_of(rows_[printed_][i], columns_[i].digits));
    print_line(out, "  ", cells, columns_, widths_);
  }
}

json::Value Table::to_json() const {
  json::Value columns = json::Value::array();
  for (const auto& c : columns_) columns.push(json::Object{{"name", json::Value(c.name)}, {"unit", json::Value(c.unit)}});
  json::Value rows = json::Value::array();
  for (const auto& row : rows_) {
    json::Value object = json::Value::object();
    for (std::size_t i = 0; i < columns_.size(); ++i) object.set(columns_[i].name, row[i]);
    rows.push(std::move(object));
  }
  json::Value out = json::Value::object();
  out.set("name", name_);
  out.set("title", title_);
  out.set("columns", std::move(columns));
  out.set("rows", std::move(rows));
  return out;
}

Report::Report(std::string area) : area_(std::move(area)) {}

void Report::context(std::string name, json::Value value) { context_.set(std::move(name), std::move(value)); }

Table& Report::table(std::string name, std::string title, std::vector<Column> columns) {
  if (live_) print_tables(*live_);
  Table& table = tables_.emplace_back(std::move(name), std::move(title), std::move(columns));
  if (live_ && table.fixed()) {
    table.print_head(*live_);
    table.live_ = live_;
    live_->flush();
  }
  return table;
}

void Report::figure(Figure figure) { figures_.push_back(std::move(figure)); }

void Report::note(std::string line) { notes_.push_back(std::move(line)); }

namespace {

const json::Value& member(const json::Value& object, std::string_view key, const std::string& where) {
  const json::Value* value = object.is_object() ? object.find(key) : nullptr;
  if (!value) throw Error(where + ": has no member '" + std::string(key) + "'");
  return *value;
}

std::string text_member(const json::Value& object, std::string_view key, const std::string& where) {
  const json::Value* value = object.find(key);
  if (!value || value->is_null()) return {};
  if (!value->is_string()) throw Error(where + "." + std::string(key) + ": is not a string");
  return value->as_string();
}

int digits_member(const json::Value& object, const std::string& where) {
  const json::Value* value = object.find("digits");
  if (!value) return 2;
  if (!value->is_int() || value->as_int() < -1 || value->as_int() > 12) {
    throw Error(where + ".digits: is not a whole number from -1 to 12");
  }
  return static_cast<int>(value->as_int());
}

}  // namespace

void Report::add_results(const json::Value& results, const std::string& source) {
  if (!results.is_object()) throw Error(source + ": is not a JSON object");
  if (const auto* context = results.find("context"); context && context->is_object()) {
    for (const auto& [name, value] : context->as_object()) this->context(name, value);
  }
  const auto& tables = member(results, "tables", source);
  if (!tables.is_array()) throw Error(source + ".tables: is not an array");
  for (const auto& t : tables.as_array()) {
    const std::string where = source + ".tables[" + text_member(t, "name", source + ".tables") + "]";
    std::vector<Column> columns;
    for (const auto& c : member(t, "columns", where).as_array()) {
      const auto* text = c.find("text");
      columns.push_back({.name = text_member(c, "name", where), .unit = text_member(c, "unit", where),
                         .digits = digits_member(c, where), .text = text && text->is_bool() && text->as_bool()});
    }
    Table& table = this->table(text_member(t, "name", where), text_member(t, "title", where), std::move(columns));
    for (const auto& row : member(t, "rows", where).as_array()) {
      if (!row.is_array() || row.as_array().size() != table.columns_.size()) {
        throw Error(where + ": a row does not have one value per column");
      }
      table.add(row.as_array());
    }
  }
  if (const auto* figures = results.find("figures"); figures && figures->is_array()) {
    for (const auto& f : figures->as_array()) {
      const std::string where = source + ".figures";
      figure({text_member(f, "name", where), text_member(f, "label", where), member(f, "value", where),
              text_member(f, "unit", where), digits_member(f, where), text_member(f, "note", where)});
    }
  }
  if (const auto* notes = results.find("notes"); notes && notes->is_array()) {
    for (const auto& line : notes->as_array()) {
      if (line.is_string()) note(line.as_string());
    }
  }
}

void Report::print_context(std::ostream& out) {
  out << "# cohort bench " << area_;
  const char* separator = ": ";
  for (const auto& [name, value] : context_.as_object()) {
    out << separator << name << " " << text_of(value, -1);
    separator = ", ";
  }
  out << "\n";
  context_printed_ = true;
}

void Report::stream(std::ostream& out) {
  live_ = &out;
  if (!context_printed_) print_context(out);
  print_tables(out);
  if (!tables_.empty() && tables_.back().fixed()) tables_.back().live_ = live_;
  out.flush();
}

void Report::print_tables(std::ostream& out) {
  for (auto& table : tables_) {
    if (table.widths_.empty()) table.print_head(out);
    table.print_rows(out);
  }
}

void Report::print(std::ostream& out, bool as_json) {
  if (as_json) {
    out << json::write(to_json()) << "\n";
    out.flush();
    return;
  }
  if (!context_printed_) print_context(out);
  print_tables(out);
  std::size_t label_width = 0;
  for (const auto& f : figures_) label_width = std::max(label_width, display_width(f.label));
  for (const auto& f : figures_) {
    out << "# " << f.label << std::string(label_width - display_width(f.label), ' ') << " : "
        << text_of(f.value, f.digits) << (f.unit.empty() ? "" : " ") << f.unit << (f.note.empty() ? "" : " ")
        << f.note << "\n";
  }
  for (const auto& line : notes_) out << "# " << line << "\n";
  out.flush();
}

json::Value Report::to_json() const {
  json::Value tables = json::Value::array();
  for (const auto& table : tables_) tables.push(table.to_json());
  json::Value summary = json::Value::object();
  for (const auto& f : figures_) summary.set(f.name, f.value);
  json::Value notes = json::Value::array();
  for (const auto& line : notes_) notes.push(line);
  json::Value out = json::Value::object();
  out.set("bench", area_);
  out.set("context", context_);
  out.set("tables", std::move(tables));
  out.set("summary", std::move(summary));
  out.set("notes", std::move(notes));
  return out;
}


std::filesystem::path installed(const std::filesystem::path& relative) {
  return own_executable().parent_path().parent_path() / relative;
}

void Report::add_script_results(std::vector<std::string> argv, const std::string& source,
                                const std::optional<std::vector<std::string>>& environment) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("cohort-bench." + unguessable_name(12));
  fs::create_directory(dir);
  fs::permissions(dir, fs::perms::owner_all);
  const RemovedAtExit scratch(dir);
  const fs::path results = dir / "results.json";
  argv.insert(argv.end(), {"--out", results.string()});
  SpawnOptions options;
  options.environment = environment;
  const int status = spawn(argv, options).wait();
  std::string text;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(results)) text = read_text(results);
  if (text.empty()) throw Error(source + " failed (see its messages above)");
  add_results(json::parse(text, results.string()), source + "'s results");
}

}  // namespace cohort::bench
