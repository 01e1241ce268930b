// common/json.hpp — a small JSON value with a strict parser and a writer.
//
// Enough for manifests, specs, journals, `--json` output and request bodies: integers stay
// exact (int64), objects keep the order their keys were added in, and parsing follows
// RFC 8259 without extensions (no comments, no trailing commas, no NaN, no duplicate keys).
//
// RapidJSON reads and writes it: the one JSON library cohort uses, chosen by `cohort bench
// json` (docs/performance.md, "JSON") among those Debian ships. On a KServe V2 request of 784 or
// 100 000 floats, against the hand-written parser this replaced: RapidJSON's document parses
// in 1.2x its time (0.7x in RapidJSON's inexact number mode), simdjson's in 0.4-0.5x,
// nlohmann/json's in 5x; all write in 0.8-1.35x. simdjson cannot build or write a document
// and reports errors without a position; nlohmann/json would make the serving path five
// times slower. RapidJSON is strict by default (no comments, NaN or trailing commas) and
// reports an offset with every error, but, like the others, accepts duplicate keys.
//
// So this is a thin binding, and Value stays cohort's own type (its call sites use members
// as plain vectors and pairs): RapidJSON's reader hands its events to a builder of Value,
// which rejects duplicate keys and deep nesting and places every error at its line and
// column. Numbers arrive as text and std::from_chars reads them exactly: RapidJSON's exact
// mode is its slow one, and Debian's RapidJSON 1.1.0 has known flaws in its own number
// conversion, which this leaves unused. RapidJSON's writer writes a Value, its doubles in
// std::to_chars' shortest form. The binding builds a Value in 1.2-1.3x the hand-written
// parser's time and writes one in about the same time; a hot path that needs only the
// tensor of a large body reads it in 0.7x of the binding's time with RapidJSON's reader.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cohort::json {

class Value;
using Array = std::vector<Value>;
// Ordered: a document written twice reads the same; lookups are linear, which suits the
// small objects JSON is used for here.
using Object = std::vector<std::pair<std::string, Value>>;

class Value {
 public:
  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}
  Value(long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(long long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(unsigned u) : v_(static_cast<std::int64_t>(u)) {}
  // Throws when the value does not fit an int64: JSON readers would lose it anyway.
  Value(unsigned long u);
  Value(unsigned long long u);
  Value(double d);  // throws for NaN and infinities, which JSON cannot carry
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Object o) : v_(std::move(o)) {}

  static Value object() { return Value(Object{}); }
  static Value array() { return Value(Array{}); }

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<std::int64_t>(v_); }
  bool is_number() const { return is_int() || std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  // Typed access; each throws cohort::Error naming the expected and the actual type.
  bool as_bool() const;
  std::int64_t as_int() const;  // also accepts a double with an integral value
  double as_double() const;     // any number
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Object members. find() returns nullptr when absent; at() throws naming the key.
  const Value* find(std::string_view key) const;
  const Value& at(std::string_view key) const;
  // Sets or replaces a member, keeping the position of an existing key.
  Value& set(std::string key, Value value);
  // Array element append.
  void push(Value value);

  // "null", "bool", "integer", "number", "string", "array", "object".
  const char* type_name() const;

  bool operator==(const Value& other) const = default;

 private:
  std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, Array, Object> v_;
};

// Compact when indent is 0; otherwise one member per line, indented by `indent` spaces.
std::string write(const Value& value, int indent = 0);

// Parses one JSON document (surrounding whitespace allowed). Throws cohort::Error with the
// line and column of the first problem; `source` names the input in that message.
Value parse(std::string_view text, std::string_view source = "JSON");

}  // namespace cohort::json
