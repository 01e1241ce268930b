// json_bench — what reading and writing JSON costs where it sits on a hot path: the body of
// a KServe V2 (Open Inference Protocol) inference request,
//   {"inputs":[{"name":"input-0","shape":[1,N],"datatype":"FP32","data":[...]}]}
// with N = 784 (one MNIST image) and N = 100 000 floats, as a client such as tritonclient
// writes it: each float32 as the shortest decimal of its double value.
//
// For each JSON library Debian ships, and for cohort::json, three operations:
//   parse   the body into the library's document
//   floats  parse, then copy inputs[0].data into a std::vector<float>: what a server does
//           (or, for the readers that build no document, read only those numbers)
//   write   build the body's document from a std::vector<float> and serialise it
// The baseline is cohort::json in the same run: every ratio is a case's median time over
// cohort::json's for the same operation and size (below 1 is faster). Every case is
// checked: the floats it extracts, and the floats its output reads back as, must be the
// request's floats exactly. It prints what every `cohort bench` area prints (common/bench.hpp).
//
//   cohort bench json [--runs N] [--json]
#include <nlohmann/json.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <simdjson.h>

#include <charconv>
#include <cstring>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/bench.hpp"
#include "common/error.hpp"
#include "common/json.hpp"
#include "common/options.hpp"
#include "bench/json_bench.hpp"

namespace {

using Floats = std::vector<float>;

// What a case does; an operation a library cannot do stays empty.
struct Case {
  const char* name;
  std::function<void(const std::string& body)> parse;
  std::function<Floats(const std::string& body)> floats;
  std::function<std::string(const Floats& data)> write;
};

// rapidjson's default number parsing is fast but may be an ulp off; exact reading needs
// kParseFullPrecisionFlag. Both are measured, since exact doubles are a requirement.
constexpr unsigned kRapidExact = rapidjson::kParseFullPrecisionFlag;
constexpr unsigned kRapidFast = rapidjson::kParseDefaultFlags;

[[noreturn]] void die(const std::string& what) { throw cohort::Error(what); }

// --- cohort::json --------------------------------------------------------------------

Floats cohort_floats(const std::string& body) {
  const cohort::json::Value v = cohort::json::parse(body, "body");
  const auto& data = v.at("inputs").as_array().at(0).at("data").as_array();
  Floats out;
  out.reserve(data.size());
  for (const auto& x : data) out.push_back(static_cast<float>(x.as_double()));
  return out;
}

std::string cohort_write(const Floats& data) {
  cohort::json::Array values;
  values.reserve(data.size());
  for (float x : data) values.emplace_back(static_cast<double>(x));
  cohort::json::Value input = cohort::json::Value::object();
  input.set("name", "input-0");
  input.set("shape", cohort::json::Array{cohort::json::Value(1), cohort::json::Value(data.size())});
  input.set("datatype", "FP32");
  input.set("data", std::move(values));
  cohort::json::Value body = cohort::json::Value::object();
  body.set("inputs", cohort::json::Array{std::move(input)});
  return cohort::json::write(body);
}

// --- nlohmann/json -------------------------------------------------------------------

template <typename Json>
Floats nlohmann_floats(const std::string& body) {
  const Json v = Json::parse(body);
  const auto& data = v.at("inputs").at(0).at("data");
  Floats out;
  out.reserve(data.size());
  for (const auto& x : data) out.push_back(x.template get<float>());
  return out;
}

template <typename Json>
std::string nlohmann_write(const Floats& data) {
  Json input = Json::object();
  input["name"] = "input-0";
  input["shape"] = Json::array({1, data.size()});
  input["datatype"] = "FP32";
  input["data"] = data;
  Json body = Json::object();
  body["inputs"] = Json::array({std::move(input)});
  return body.dump();
}

// --- RapidJSON -----------------------------------------------------------------------

template <unsigned Flags>
rapidjson::Document rapid_parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse<Flags>(body.data(), body.size());
  if (d.HasParseError()) die("rapidjson refused the body");
  return d;
}

template <unsigned Flags>
Floats rapid_floats(const std::string& body) {
  const rapidjson::Document d = rapid_parse<Flags>(body);
  const auto& data = d["inputs"][0]["data"];
  Floats out;
  out.reserve(data.Size());
  for (const auto& x : data.GetArray()) out.push_back(static_cast<float>(x.GetDouble()));
  return out;
}

std::string rapid_write_dom(const Floats& data) {
  rapidjson::Document body(rapidjson::kObjectType);
  auto& alloc = body.GetAllocator();
  rapidjson::Value values(rapidjson::kArrayType);
  values.Reserve(static_cast<rapidjson::SizeType>(data.size()), alloc);
  for (float x : data) values.PushBack(static_cast<double>(x), alloc);
  rapidjson::Value shape(rapidjson::kArrayType);
  shape.PushBack(1, alloc).PushBack(static_cast<std::uint64_t>(data.size()), alloc);
  rapidjson::Value input(rapidjson::kObjectType);
  input.AddMember("name", "input-0", alloc);
  input.AddMember("shape", shape, alloc);
  input.AddMember("datatype", "FP32", alloc);
  input.AddMember("data", values, alloc);
  rapidjson::Value inputs(rapidjson::kArrayType);
  inputs.PushBack(input, alloc);
  body.AddMember("inputs", inputs, alloc);
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  body.Accept(writer);
  return {out.GetString(), out.GetSize()};
}

// RapidJSON's reader alone: the numbers of inputs[0].data go straight into the vector, read
// exactly by std::from_chars, and no document is built. Numbers come as text in situ, in a
// copy of the body kept from call to call, as a server would read the body into its own
// buffer.
class DataFloats : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DataFloats> {
 public:
  explicit DataFloats(Floats& out) : out_(out) {}
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    next_is_data_ = depth_ == 3 && std::string_view(s, n) == "data";
    return true;
  }
  bool StartObject() { return ++depth_, true; }
  bool EndObject(rapidjson::SizeType) { return --depth_, true; }
  bool StartArray() {
    ++depth_;
    in_data_ = next_is_data_ && depth_ == 4;
    next_is_data_ = false;
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    in_data_ = false;
    return --depth_, true;
  }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    if (!in_data_) return true;
    float f = 0;
    auto [end, ec] = std::from_chars(s, s + n, f);
    out_.push_back(f);
    return ec == std::errc() && end == s + n;
  }

 private:
  Floats& out_;
  int depth_ = 0;
  bool next_is_data_ = false;
  bool in_data_ = false;
};

Floats rapid_reader_floats(const std::string& body) {
  static std::string copy;
  copy.assign(body);
  Floats out;
  DataFloats handler(out);
  rapidjson::InsituStringStream in(copy.data());
  rapidjson::Reader reader;
  if (reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag>(in, handler).IsError()) {
    die("rapidjson's reader refused the body");
  }
  return out;
}

// RapidJSON's writer alone, streaming the body without a document.
std::string rapid_write_stream(const Floats& data) {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  w.StartObject();
  w.Key("inputs");
  w.StartArray();
  w.StartObject();
  w.Key("name");
  w.String("input-0");
  w.Key("shape");
  w.StartArray();
  w.Int(1);
  w.Uint64(data.size());
  w.EndArray();
  w.Key("datatype");
  w.String("FP32");
  w.Key("data");
  w.StartArray();
  for (float x : data) w.Double(static_cast<double>(x));
  w.EndArray();
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return {out.GetString(), out.GetSize()};
}

// --- simdjson ------------------------------------------------------------------------
// A parser is meant to be kept and reused; its input must carry SIMDJSON_PADDING spare
// bytes, which a server can allocate when it reads the body, so the copy is not timed.

simdjson::padded_string& padded(const std::string& body) {
  static std::string last;
  static simdjson::padded_string copy;
  if (body != last) {
    last = body;
    copy = simdjson::padded_string(body);
  }
  return copy;
}

simdjson::dom::parser& dom_parser() {
  static simdjson::dom::parser parser;
  return parser;
}

Floats simd_dom_floats(const std::string& body) {
  simdjson::dom::element v = dom_parser().parse(padded(body));
  simdjson::dom::array data = v["inputs"].at(0)["data"];
  Floats out;
  out.reserve(data.size());
  for (double x : data) out.push_back(static_cast<float>(x));
  return out;
}

Floats simd_ondemand_floats(const std::string& body) {
  static simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc = parser.iterate(padded(body));
  Floats out;
  for (simdjson::ondemand::object input : doc["inputs"]) {
    for (double x : input["data"]) out.push_back(static_cast<float>(x));
    break;
  }
  return out;
}

// -------------------------------------------------------------------------------------

// Keeps a parsed document's size observable, so that no parse is optimised away.
volatile std::size_t sink;

// simdjson has no write: it builds no documents, and only prints back one it parsed
// (simdjson::to_string), which a response is not.
std::vector<Case> cases() {
  using nlohmann::json;
  using nlohmann::ordered_json;
  return {
      {"cohort::json (baseline)",
       [](const std::string& b) { sink = cohort::json::parse(b, "body").as_object().size(); },
       cohort_floats, cohort_write},
      {"nlohmann::ordered_json", [](const std::string& b) { sink = ordered_json::parse(b).size(); },
       nlohmann_floats<ordered_json>, nlohmann_write<ordered_json>},
      {"nlohmann::json", [](const std::string& b) { sink = json::parse(b).size(); }, nlohmann_floats<json>,
       nlohmann_write<json>},
      {"RapidJSON Document, exact", [](const std::string& b) { sink = rapid_parse<kRapidExact>(b).MemberCount(); },
       rapid_floats<kRapidExact>, rapid_write_dom},
      {"RapidJSON Document, fast", [](const std::string& b) { sink = rapid_parse<kRapidFast>(b).MemberCount(); },
       rapid_floats<kRapidFast>, nullptr},
      {"RapidJSON Writer (no document)", nullptr, nullptr, rapid_write_stream},
      {"RapidJSON Reader, data only", nullptr, rapid_reader_floats, nullptr},
      {"simdjson DOM", [](const std::string& b) { sink = dom_parser().parse(padded(b)).get_object().size(); },
       simd_dom_floats, nullptr},
      {"simdjson On-Demand", nullptr, simd_ondemand_floats, nullptr},
  };
}

void check(const char* name, const char* what, const Floats& got, const Floats& want) {
  if (got.size() != want.size() || std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) != 0) {
    throw cohort::Error(std::string(name) + ": " + what + " does not give back the request's floats");
  }
}

double microseconds(const std::function<void()>& call) { return cohort::bench::seconds(call) * 1e6; }

// One operation, over every case that can do it, into `table`: each case checked first,
// then timed in alternation with the others.
void measure(int runs, const std::vector<Case>& all, const std::string& op, const std::string& body,
             const Floats& data, cohort::bench::Table& table) {
  std::vector<std::function<double()>> measures;
  std::vector<const Case*> measured;
  for (const Case& c : all) {
    if (op == "parse" && c.parse) {
      measures.push_back([&c, &body] { return microseconds([&] { c.parse(body); }); });
    } else if (op == "floats" && c.floats) {
      check(c.name, "extracting", c.floats(body), data);
      measures.push_back([&c, &body] { return microseconds([&] { sink = c.floats(body).size(); }); });
    } else if (op == "write" && c.write) {
      check(c.name, "writing", cohort_floats(c.write(data)), data);
      measures.push_back([&c, &data] { return microseconds([&] { sink = c.write(data).size(); }); });
    } else {
      continue;
    }
    measured.push_back(&c);
  }
  const auto us = cohort::bench::alternate({1, runs}, measures);
  for (std::size_t i = 0; i < us.size(); ++i) {
    table.add({op, measured[i]->name, us[i].median, 100 * us[i].spread(),
               cohort::bench::number(us[i].median / us[0].median)});
  }
}

}  // namespace

namespace cohort::json {

int bench_command(const std::vector<std::string>& args) {
  namespace po = cohort::options::po;
  std::string runs_text = "51";
  cohort::options::Parser parser(
      {"bench json",
       {"[--runs N] [--json]"},
       "Times parsing, reading the floats of, and writing a KServe V2 inference request of 784\n"
       "and of 100 000 floats with cohort::json (the baseline) and with every JSON library\n"
       "Debian ships. The calls alternate, and each figure is the median of N runs.",
       {"cohort bench json --runs 51"}});
  parser.add()("runs", po::value(&runs_text)->value_name("N"), "timed runs of each call (51)")(
      "json", "print one JSON object instead of the tables");
  auto parsed = parser.parse(args);
  if (!parsed) return 0;
  const int runs = static_cast<int>(cohort::options::whole_number("--runs", runs_text, 1, 1'000'000));

  const std::vector<Case> all = cases();
  cohort::bench::Report report("json");
  report.context("runs", runs);
  report.context("simdjson", simdjson::get_active_implementation()->name());
  for (std::size_t n : {std::size_t{784}, std::size_t{100000}}) {
    std::mt19937 rng(42);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    Floats data(n);
    for (float& x : data) x = dist(rng);
    const std::string body = cohort_write(data);
    auto& table = report.table(
        "v2_" + std::to_string(n),
        "a V2 request of " + std::to_string(n) + " floats (" + std::to_string(body.size()) +
            " bytes): medians of alternating runs, against cohort::json",
        {{.name = "operation", .text = true},
         {.name = "library", .text = true},
         {.name = "median", .unit = "us", .digits = 1},
         {.name = "spread", .unit = "%", .digits = 1},
         {.name = "ratio", .digits = 2}});
    for (const char* op : {"parse", "floats", "write"}) measure(runs, all, op, body, data, table);
  }
  report.print(std::cout, parsed->has("json"));
  return 0;
}

}  // namespace cohort::json
