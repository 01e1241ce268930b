// common/yaml_reader.hpp — reading a YAML document field by field, each error naming the
// file and the field the way the user wrote it:
//   "exp.yaml: spec.parameters[2].feasibleSpace.min: must be a number (got 'low')"
// Job specs and experiment specs read their documents through it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cohort::yaml {

// A whole number in low..high written as text, as Kubeflow and Katib write numbers ("2");
// otherwise `fail` is told why, in the words Reader uses ("must be a whole number (got
// 'two')", "must be 1..10 (got 0)"), and nothing comes back.
std::optional<long long> whole_number(const std::string& text, long long low, long long high,
                                      const std::function<void(const std::string& why)>& fail);

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  // Throws cohort::input_error "SOURCE: PATH: WHY".
  [[noreturn]] void fail(const std::string& path, const std::string& why) const;

  // Requires a mapping whose keys are all in `allowed`; an unknown key is named with the
  // keys that would be right.
  void only(const YAML::Node& map, const std::string& path, const std::set<std::string>& allowed) const;

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string at(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

  std::string string(const YAML::Node& n, const std::string& path) const;
  // Kubeflow and Katib often write numbers as strings: "2" is accepted like 2.
  long long integer(const YAML::Node& n, const std::string& path) const;
  // A whole number in low..high, checked before the caller narrows it, so that 2^32 + 2
  // replicas are an error rather than 2.
  long long integer(const YAML::Node& n, const std::string& path, long long low, long long high) const;
  double number(const YAML::Node& n, const std::string& path) const;  // finite only
  double number_text(const std::string& text, const std::string& path) const;
  std::vector<std::string> strings(const YAML::Node& n, const std::string& path) const;
  // A whole number in least..1000000.
  int count(const YAML::Node& n, const std::string& path, int least) const;

  // Parses `text`; malformed YAML is an input error naming the source and the position, and
  // so is a document too large to read, counting what its aliases repeat (at most 16 MiB
  // of text and 100 000 values).
  YAML::Node load(const std::string& text) const;

  // Runs `read`, which reads a whole document; what yaml-cpp throws for a document of the
  // wrong shape (a scalar where a mapping belongs, a list as a key) becomes an input error
  // naming the source, like every other mistake in it.
  template <class Read>
  auto guarded(Read&& read) const -> decltype(read()) {
    try {
      return read();
    } catch (const YAML::Exception& e) {
      shape_error(e);
    }
  }

 private:
  [[noreturn]] void shape_error(const YAML::Exception& e) const;
  void check_expanded_size(const YAML::Node& root) const;

  std::string source_;
};

}  // namespace cohort::yaml
