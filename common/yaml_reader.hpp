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

// Told why a value is wrong; the caller adds where.
using Complaint = std::function<void(const std::string& why)>;

// A whole number in low..high written as text, as Kubeflow and Katib write numbers ("2");
// otherwise `fail` is told why, in the words Reader uses ("must be a whole number (got
// 'two')", "must be 1..10 (got 0)"), and nothing comes back.
std::optional<long long> whole_number(const std::string& text, long long low, long long high, const Complaint& fail);

// The text of the spec file at `path`; one that cannot be read is an input error naming it
// and `what` it should hold ("the job spec").
std::string read_spec_file(const std::string& path, const std::string& what);

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
  // A memory size as Kubernetes (8Gi) or Slurm (8G) writes it, in Slurm's syntax ("8G").
  std::string memory(const YAML::Node& n, const std::string& path) const;
  // A Kubernetes CPU quantity (4, "0.5", "500m") as whole CPUs in low..high, rounded up:
  // Slurm allocates whole CPUs.
  int cpus(const YAML::Node& n, const std::string& path, int low, int high) const;
  // A whole number in least..1000000.
  int count(const YAML::Node& n, const std::string& path, int least) const;

  // Kubernetes' metadata ({name, namespace, labels, annotations}): its name, empty when it
  // gives none.
  std::string metadata_name(const YAML::Node& metadata, const std::string& path) const;
  // A name that Slurm job names and file names take (is_object_name); `whose` says what it
  // names in the message ("a job's").
  void check_object_name(const std::string& name, const std::string& path, const std::string& whose) const;
  // The first of a pod spec's containers, which must be there.
  YAML::Node first_container(const YAML::Node& containers, const std::string& path) const;
  // A container's command line: its `command` followed by its `args`; empty when it gives
  // neither. `args` without `command` is an error: they belong to an image's ENTRYPOINT.
  std::vector<std::string> command_and_args(const YAML::Node& container, const std::string& path) const;

  const std::string& source() const { return source_; }

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

// Reads the document `text` from `source` with read(reader, document): malformed YAML, a
// document too large, and a value of the wrong shape are input errors naming `source`, like
// every mistake that `read` finds.
template <class Read>
auto read_document(const std::string& text, const std::string& source, Read&& read) {
  const Reader r(source);
  return r.guarded([&] { return read(r, r.load(text)); });
}

}  // namespace cohort::yaml
