#include "common/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/error/error.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <unordered_set>

#include "common/error.hpp"

namespace cohort::json {
namespace {

// RapidJSON's strict defaults (no comments, NaN or trailing commas: their flags stay off),
// and two choices of ours. In situ: strings decode in place in our copy of the text, so
// that a string or key the reader hands over still shows where it stood in the document.
// Numbers as text: std::from_chars reads them exactly, where RapidJSON's own conversion is
// exact only in its slow mode. The reader is the recursive one; kMaxDepth bounds it.
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag;

// Deep enough for any real document, shallow enough that reading, destroying or writing a
// Value, all recursive, cannot overflow the stack.
constexpr std::size_t kMaxDepth = 256;

// Objects up to this size find a duplicate key by comparing with every key; larger ones
// keep a set, so that reading n keys costs n, not n².
constexpr std::size_t kKeysCompared = 16;

// RapidJSON's lengths are 32-bit.
constexpr std::size_t kMaxLength = std::numeric_limits<rapidjson::SizeType>::max();

std::int64_t checked_int(unsigned long long u) {
  if (u > static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max())) {
    throw Error("JSON integer " + std::to_string(u) + " does not fit a signed 64-bit integer");
  }
  return static_cast<std::int64_t>(u);
}

[[noreturn]] void wrong_type(const Value& v, const char* wanted) {
  throw Error(std::string("JSON value is ") + v.type_name() + ", expected " + wanted);
}

// --- reading ---------------------------------------------------------------------------

// "unexpected character 'x'", or the end of the input when the offset is there.
std::string unexpected(std::string_view text, std::size_t offset) {
  if (offset >= text.size()) return "unexpected end of input";
  const char c = text[offset];
  if (static_cast<unsigned char>(c) < 0x20) return "unexpected control character " + std::to_string(int(c));
  return std::string("unexpected character '") + c + "'";
}

// RapidJSON's error at `offset`, in cohort's words.
std::string describe(rapidjson::ParseErrorCode code, std::string_view text, std::size_t offset) {
  const char at = offset < text.size() ? text[offset] : '\0';
  switch (code) {
    case rapidjson::kParseErrorDocumentEmpty:
    case rapidjson::kParseErrorValueInvalid: return unexpected(text, offset);
    case rapidjson::kParseErrorDocumentRootNotSingular: return "unexpected text after the JSON value";
    case rapidjson::kParseErrorObjectMissName: return "expected a string as object key";
    case rapidjson::kParseErrorObjectMissColon: return "expected ':' after object key";
    case rapidjson::kParseErrorObjectMissCommaOrCurlyBracket: return "expected ',' or '}' in object";
    case rapidjson::kParseErrorArrayMissCommaOrSquareBracket: return "expected ',' or ']' in array";
    case rapidjson::kParseErrorStringUnicodeEscapeInvalidHex: return "invalid hex digit in \\u escape";
    case rapidjson::kParseErrorStringUnicodeSurrogateInvalid: return "invalid surrogate pair in \\u escape";
    case rapidjson::kParseErrorStringEscapeInvalid:
      if (at == '\\' && offset + 1 < text.size()) return std::string("invalid escape '\\") + text[offset + 1] + "'";
      return "control character in string (escape it)";
    case rapidjson::kParseErrorStringMissQuotationMark:
      return offset < text.size() ? "control character in string (escape it)" : "unterminated string";
    case rapidjson::kParseErrorNumberTooBig: return "number out of range";
    case rapidjson::kParseErrorNumberMissFraction: return "digits expected after '.'";
    case rapidjson::kParseErrorNumberMissExponent: return "digits expected in exponent";
    default: return rapidjson::GetParseError_En(code);
  }
}

[[noreturn]] void fail(std::string_view source, std::string_view text, std::size_t offset, const std::string& what) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  throw Error(std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + what);
}

// Where the string whose content starts at `start` ends: just after its closing quote.
// The reader has checked the string, so its escapes are whole.
std::size_t end_of_string(std::string_view text, std::size_t start) {
  std::size_t i = start;
  while (text[i] != '"') i += text[i] == '\\' ? 2 : 1;
  return i + 1;
}

// RapidJSON 1.1 checks that a high surrogate escape has its low half, but lets a lone low
// one through, encoded as the bytes of a surrogate. Where such bytes come out of a string,
// this finds the escape that made them, if one did, and returns where it ends.
std::optional<std::size_t> lone_low_surrogate(std::string_view text, std::size_t start) {
  auto hex4 = [&](std::size_t at) {
    unsigned cp = 0;
    std::from_chars(text.data() + at, text.data() + at + 4, cp, 16);
    return cp;
  };
  for (std::size_t i = start; text[i] != '"';) {
    if (text[i] != '\\') {
      ++i;
    } else if (text[i + 1] != 'u') {
      i += 2;
    } else {
      const unsigned cp = hex4(i + 2);
      if (cp >= 0xDC00 && cp <= 0xDFFF) return i + 6;
      i += cp >= 0xD800 && cp <= 0xDBFF ? 12 : 6;  // a high half and the low half it has
    }
  }
  return std::nullopt;
}

bool has_surrogate_bytes(std::string_view s) {
  for (std::size_t i = s.find('\xED'); i != std::string_view::npos; i = s.find('\xED', i + 1)) {
    if (i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xE0) == 0xA0) return true;
  }
  return false;
}

// Builds a Value from the reader's events. A handler returning false stops the reader;
// `problem` then says why and where.
class Builder : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Builder> {
 public:
  struct Problem {
    std::optional<std::size_t> offset;  // none: where the reader stopped
    std::string what;
  };

  // `buffer` is the copy of `text` the reader decodes strings in.
  Builder(std::string_view text, const char* buffer) : text_(text), buffer_(buffer) {}

  bool Null() { return add(Value(nullptr)); }
  bool Bool(bool b) { return add(Value(b)); }

  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    const char* last = s + n;
    if (std::none_of(s, last, [](char c) { return c == '.' || c == 'e' || c == 'E'; })) {
      long long i = 0;
      auto [end, ec] = std::from_chars(s, last, i);
      if (ec == std::errc() && end == last) return add(Value(i));
      // Beyond int64: read it as a double, as other readers do.
    }
    double d = 0;
    auto [end, ec] = std::from_chars(s, last, d);
    if (ec != std::errc() || end != last || !std::isfinite(d)) return stop(offset(s), "number out of range");
    return add(Value(d));
  }

  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (!whole(s, n)) return false;
    return add(Value(std::string(s, n)));
  }

  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (!whole(s, n)) return false;
    const std::string_view key(s, n);
    Open& top = open_.back();
    Object& members = top.container.as_object();
    bool seen = false;
    if (top.keys) {
      seen = !top.keys->emplace(key).second;
    } else {
      seen = std::any_of(members.begin(), members.end(), [&](const auto& m) { return m.first == key; });
      if (!seen && members.size() == kKeysCompared) {
        top.keys = std::make_unique<std::unordered_set<std::string>>();
        for (const auto& m : members) top.keys->insert(m.first);
        top.keys->emplace(key);
      }
    }
    if (seen) return stop(end_of_string(text_, offset(s)), "duplicate key \"" + std::string(key) + "\"");
    members.emplace_back(std::string(key), Value());
    return true;
  }

  bool StartObject() { return open(Value::object()); }
  bool StartArray() { return open(Value::array()); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool EndArray(rapidjson::SizeType) { return close(); }

  Value take() { return std::move(root_); }
  const std::optional<Problem>& problem() const { return problem_; }

 private:
  struct Open {
    Value container;
    std::unique_ptr<std::unordered_set<std::string>> keys;  // once the object is large
  };

  std::size_t offset(const char* p) const { return static_cast<std::size_t>(p - buffer_); }

  bool stop(std::optional<std::size_t> at, std::string what) {
    problem_ = Problem{at, std::move(what)};
    return false;
  }

  // A string or key as the document wrote it: no lone low surrogate escape.
  bool whole(const char* s, rapidjson::SizeType n) {
    if (!has_surrogate_bytes({s, n})) return true;
    auto at = lone_low_surrogate(text_, offset(s));
    return !at || stop(*at, "low surrogate without its high surrogate");
  }

  bool add(Value v) {
    if (open_.empty()) {
      root_ = std::move(v);
    } else if (Value& c = open_.back().container; c.is_array()) {
      c.as_array().push_back(std::move(v));
    } else {
      c.as_object().back().second = std::move(v);
    }
    return true;
  }

  bool open(Value container) {
    if (open_.size() == kMaxDepth) {
      return stop(std::nullopt, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    open_.push_back(Open{std::move(container), nullptr});
    return true;
  }

  bool close() {
    Value done = std::move(open_.back().container);
    open_.pop_back();
    return add(std::move(done));
  }

  std::string_view text_;
  const char* buffer_;
  std::vector<Open> open_;
  Value root_;
  std::optional<Problem> problem_;
};

// The copy of the text the reader decodes strings in, and stops at the '\0' of. Each thread
// keeps its copy's memory from one parse to the next, up to kKeptScratch bytes: allocating
// a large body's size afresh made parsing it half again as slow (`cohort bench json`), as malloc
// returned the memory to the system after each parse and faulted it in again for the next.
class Scratch {
 public:
  static constexpr std::size_t kKeptScratch = std::size_t{16} << 20;

  explicit Scratch(std::string_view text) { copy().assign(text); }
  ~Scratch() {
    if (copy().capacity() > kKeptScratch) std::string().swap(copy());
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  char* data() { return copy().data(); }

 private:
  static std::string& copy() {
    thread_local std::string text;
    return text;
  }
};

// --- writing ---------------------------------------------------------------------------

rapidjson::SizeType length_of(const std::string& s) {
  if (s.size() > kMaxLength) throw Error("JSON string of " + std::to_string(s.size()) + " bytes is longer than 4 GiB");
  return static_cast<rapidjson::SizeType>(s.size());
}

template <typename Writer>
void emit(Writer& w, const Value& v) {
  if (v.is_null()) {
    w.Null();
  } else if (v.is_bool()) {
    w.Bool(v.as_bool());
  } else if (v.is_int()) {
    w.Int64(v.as_int());
  } else if (v.is_number()) {
    // The shortest form that reads back to the same double, as a number that reads back as
    // a double, not an integer.
    char buf[40];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf - 2, v.as_double());
    if (std::find_if(buf, end, [](char c) { return c == '.' || c == 'e'; }) == end) {
      *end++ = '.';
      *end++ = '0';
    }
    w.RawValue(buf, static_cast<std::size_t>(end - buf), rapidjson::kNumberType);
  } else if (v.is_string()) {
    w.String(v.as_string().data(), length_of(v.as_string()));
  } else if (v.is_array()) {
    w.StartArray();
    for (const Value& e : v.as_array()) emit(w, e);
    w.EndArray();
  } else {
    w.StartObject();
    for (const auto& [key, member] : v.as_object()) {
      w.Key(key.data(), length_of(key));
      emit(w, member);
    }
    w.EndObject();
  }
}

}  // namespace

Value::Value(unsigned long u) : v_(checked_int(u)) {}
Value::Value(unsigned long long u) : v_(checked_int(u)) {}
Value::Value(double d) : v_(d) {
  if (!std::isfinite(d)) throw Error("JSON cannot represent " + std::to_string(d));
}

bool Value::as_bool() const {
  if (!is_bool()) wrong_type(*this, "bool");
  return std::get<bool>(v_);
}

std::int64_t Value::as_int() const {
  if (is_int()) return std::get<std::int64_t>(v_);
  if (std::holds_alternative<double>(v_)) {
    double d = std::get<double>(v_);
    if (d == std::trunc(d) && std::fabs(d) < 9.2e18) return static_cast<std::int64_t>(d);
  }
  wrong_type(*this, "integer");
}

double Value::as_double() const {
  if (is_int()) return static_cast<double>(std::get<std::int64_t>(v_));
  if (std::holds_alternative<double>(v_)) return std::get<double>(v_);
  wrong_type(*this, "number");
}

const std::string& Value::as_string() const {
  if (!is_string()) wrong_type(*this, "string");
  return std::get<std::string>(v_);
}

const Array& Value::as_array() const {
  if (!is_array()) wrong_type(*this, "array");
  return std::get<Array>(v_);
}

Array& Value::as_array() {
  if (!is_array()) wrong_type(*this, "array");
  return std::get<Array>(v_);
}

const Object& Value::as_object() const {
  if (!is_object()) wrong_type(*this, "object");
  return std::get<Object>(v_);
}

Object& Value::as_object() {
  if (!is_object()) wrong_type(*this, "object");
  return std::get<Object>(v_);
}

const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : as_object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

const Value& Value::at(std::string_view key) const {
  const Value* v = find(key);
  if (!v) throw Error("JSON object has no member \"" + std::string(key) + "\"");
  return *v;
}

Value& Value::set(std::string key, Value value) {
  auto& o = as_object();
  for (auto& [k, v] : o) {
    if (k == key) {
      v = std::move(value);
      return v;
    }
  }
  o.emplace_back(std::move(key), std::move(value));
  return o.back().second;
}

void Value::push(Value value) { as_array().push_back(std::move(value)); }

const char* Value::type_name() const {
  switch (v_.index()) {
    case 0: return "null";
    case 1: return "bool";
    case 2: return "integer";
    case 3: return "number";
    case 4: return "string";
    case 5: return "array";
    default: return "object";
  }
}

std::string write(const Value& value, int indent) {
  rapidjson::StringBuffer out;
  if (indent > 0) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(out);
    writer.SetIndent(' ', static_cast<unsigned>(indent));
    emit(writer, value);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> writer(out);
    emit(writer, value);
  }
  return std::string(out.GetString(), out.GetSize());
}

Value parse(std::string_view text, std::string_view source) {
  if (text.size() > kMaxLength) {
    throw Error(std::string(source) + ": a JSON document of " + std::to_string(text.size()) +
                " bytes is longer than 4 GiB");
  }
  Scratch scratch(text);
  rapidjson::InsituStringStream in(scratch.data());
  Builder builder(text, scratch.data());
  rapidjson::Reader reader;
  const rapidjson::ParseResult result = reader.Parse<kParseFlags>(in, builder);
  if (result.IsError()) {
    if (result.Code() == rapidjson::kParseErrorTermination && builder.problem()) {
      fail(source, text, builder.problem()->offset.value_or(result.Offset()), builder.problem()->what);
    }
    fail(source, text, result.Offset(), describe(result.Code(), text, result.Offset()));
  }
  // The reader takes a '\0' for the end of the text; one inside it is not.
  if (in.Tell() != text.size()) fail(source, text, in.Tell(), "unexpected text after the JSON value");
  return builder.take();
}

}  // namespace cohort::json
