#include "common/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_set>

#include "common/error.hpp"

namespace cohort::json {
namespace {

std::int64_t checked_int(unsigned long long u) {
  if (u > static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max())) {
    throw Error("JSON integer " + std::to_string(u) + " does not fit a signed 64-bit integer");
  }
  return static_cast<std::int64_t>(u);
}

[[noreturn]] void wrong_type(const Value& v, const char* wanted) {
  throw Error(std::string("JSON value is ") + v.type_name() + ", expected " + wanted);
}

void write_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void write_double(std::string& out, double d) {
  char buf[32];
  // Shortest form that reads back to the same double.
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string_view text(buf, static_cast<size_t>(end - buf));
  out += text;
  // Keep it a JSON number that reads back as a double, not an integer.
  if (text.find_first_of(".eE") == std::string_view::npos) out += ".0";
}

void write_value(std::string& out, const Value& v, int indent, int depth) {
  auto newline = [&](int d) {
    if (indent == 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  if (v.is_null()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_number()) {
    write_double(out, v.as_double());
  } else if (v.is_string()) {
    write_string(out, v.as_string());
  } else if (v.is_array()) {
    const auto& a = v.as_array();
    out += '[';
    for (size_t i = 0; i < a.size(); ++i) {
      if (i) out += ',';
      newline(depth + 1);
      write_value(out, a[i], indent, depth + 1);
    }
    if (!a.empty()) newline(depth);
    out += ']';
  } else {
    const auto& o = v.as_object();
    out += '{';
    for (size_t i = 0; i < o.size(); ++i) {
      if (i) out += ',';
      newline(depth + 1);
      write_string(out, o[i].first);
      out += indent ? ": " : ":";
      write_value(out, o[i].second, indent, depth + 1);
    }
    if (!o.empty()) newline(depth);
    out += '}';
  }
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Value document() {
    skip_space();
    Value v = value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  // Deep enough for any real document, shallow enough that the stack cannot overflow.
  static constexpr int kMaxDepth = 256;

  [[noreturn]] void fail(const std::string& what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error(std::string(source_) + ":" + std::to_string(line) + ":" + std::to_string(column) +
                ": " + what);
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_space() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  void expect_word(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) fail("invalid literal (expected '" + std::string(word) + "')");
    pos_ += word.size();
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return Value(string());
      case 't': expect_word("true"); return Value(true);
      case 'f': expect_word("false"); return Value(false);
      case 'n': expect_word("null"); return Value(nullptr);
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return number();
        if (at_end()) fail("unexpected end of input");
        fail(std::string("unexpected character '") + peek() + "'");
    }
  }

  Value object(int depth) {
    ++pos_;
    Object o;
    // Keys seen so far: comparing each new key with every earlier one made an object of
    // n keys cost n² (a 1.6 MB object of 100 000 keys took half a minute).
    std::unordered_set<std::string> keys;
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return Value(std::move(o));
    }
    for (;;) {
      skip_space();
      if (peek() != '"') fail("expected a string as object key");
      std::string key = string();
      if (!keys.insert(key).second) fail("duplicate key \"" + key + "\"");
      skip_space();
      if (peek() != ':') fail("expected ':' after object key");
      ++pos_;
      skip_space();
      o.emplace_back(std::move(key), value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return Value(std::move(o));
      }
      fail("expected ',' or '}' in object");
    }
  }

  Value array(int depth) {
    ++pos_;
    Array a;
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return Value(std::move(a));
    }
    for (;;) {
      skip_space();
      a.push_back(value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return Value(std::move(a));
      }
      fail("expected ',' or ']' in array");
    }
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else fail("invalid hex digit in \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        --pos_;
        fail("control character in string (escape it)");
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(pos_, 2) != "\\u") fail("high surrogate without its low surrogate");
            pos_ += 2;
            unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("invalid low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("low surrogate without its high surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          --pos_;
          fail(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  Value number() {
    size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("invalid number");
    }
    bool integral = true;
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("digits expected after '.'");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("digits expected in exponent");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integral) {
      std::int64_t i = 0;
      auto [end, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && end == last) return Value(static_cast<long long>(i));
      // Beyond int64: fall through and keep it as a double, as other readers do.
    }
    double d = 0;
    auto [end, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || end != last || !std::isfinite(d)) {
      pos_ = start;
      fail("number out of range");
    }
    return Value(d);
  }

  std::string_view s_;
  std::string_view source_;
  size_t pos_ = 0;
};

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
  std::string out;
  write_value(out, value, indent, 0);
  return out;
}

Value parse(std::string_view text, std::string_view source) { return Parser(text, source).document(); }

}  // namespace cohort::json
