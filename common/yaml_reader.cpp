#include "common/yaml_reader.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/text.hpp"

namespace cohort::yaml {

void Reader::fail(const std::string& path, const std::string& why) const {
  throw input_error(source_ + ": " + (path.empty() ? "" : path + ": ") + why);
}

void Reader::only(const YAML::Node& map, const std::string& path, const std::set<std::string>& allowed) const {
  if (!map.IsMap()) fail(path, "must be a mapping");
  for (const auto& kv : map) {
    auto key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(join(path, key), "unknown field (expected one of: " + list + ")");
    }
  }
}

std::string Reader::string(const YAML::Node& n, const std::string& path) const {
  if (!n.IsScalar()) fail(path, "must be a string");
  return n.as<std::string>();
}

std::optional<long long> whole_number(const std::string& text, long long low, long long high, const Complaint& fail) {
  long long v = 0;
  try {
    size_t used = 0;
    v = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    fail("must be a whole number (got '" + text + "')");
    return std::nullopt;
  }
  if (v < low || v > high) {
    fail("must be " + std::to_string(low) + ".." + std::to_string(high) + " (got " + std::to_string(v) + ")");
    return std::nullopt;
  }
  return v;
}

long long Reader::integer(const YAML::Node& n, const std::string& path) const {
  return integer(n, path, std::numeric_limits<long long>::min(), std::numeric_limits<long long>::max());
}

long long Reader::integer(const YAML::Node& n, const std::string& path, long long low, long long high) const {
  if (!n.IsScalar()) fail(path, "must be a whole number");
  return *whole_number(n.as<std::string>(), low, high, [&](const std::string& why) { fail(path, why); });
}

double Reader::number(const YAML::Node& n, const std::string& path) const {
  if (!n.IsScalar()) fail(path, "must be a number");
  return number_text(n.as<std::string>(), path);
}

double Reader::number_text(const std::string& text, const std::string& path) const {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  fail(path, "must be a number (got '" + text + "')");
}

std::string Reader::memory(const YAML::Node& n, const std::string& path) const {
  const std::string text = string(n, path);
  // Kubernetes quantities (8Gi) and Slurm's (8G) both mean binary units here: 1 to 12
  // digits, then K, M, G or T (M when none), then an optional 'i' after the unit.
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string_view rest = std::string_view(text).substr(digits);
  char unit = 'M';
  if (!rest.empty() && std::string_view("KMGT").find(rest[0]) != std::string_view::npos) {
    unit = rest[0];
    rest.remove_prefix(1);
    if (rest == "i") rest = {};
  }
  if (digits == 0 || digits > 12 || !rest.empty()) {
    fail(path, "'" + (text.size() > 64 ? text.substr(0, 64) + "..." : text) + "' is not a memory size (e.g. 512M, 8G, 8Gi)");
  }
  return text.substr(0, digits) + unit;
}

int Reader::cpus(const YAML::Node& n, const std::string& path, int low, int high) const {
  if (!n.IsScalar()) fail(path, "must be a number of CPUs (4, \"0.5\" or \"500m\")");
  std::string text = n.as<std::string>();
  double scale = 1;
  if (!text.empty() && text.back() == 'm') text.pop_back(), scale = 1000;
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size()) v = std::nan("");
  } catch (const std::exception&) {
    v = std::nan("");
  }
  if (!std::isfinite(v)) fail(path, "must be a number of CPUs (4, \"0.5\" or \"500m\"; got '" + n.as<std::string>() + "')");
  const double whole = std::ceil(v / scale);
  if (whole < low || whole > high) {
    fail(path, "must be " + std::to_string(low) + ".." + std::to_string(high) + " (got " + n.as<std::string>() + ")");
  }
  return static_cast<int>(whole);
}

std::vector<std::string> Reader::strings(const YAML::Node& n, const std::string& path) const {
  if (!n.IsSequence()) fail(path, "must be a list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) out.push_back(string(n[i], at(path, i)));
  return out;
}

int Reader::count(const YAML::Node& n, const std::string& path, int least) const {
  return static_cast<int>(integer(n, path, least, 1000000));
}

std::string Reader::metadata_name(const YAML::Node& metadata, const std::string& path) const {
  only(metadata, path, {"name", "namespace", "labels", "annotations"});
  return metadata["name"] ? string(metadata["name"], join(path, "name")) : "";
}

void Reader::check_object_name(const std::string& name, const std::string& path, const std::string& whose) const {
  if (name.size() > 63) fail(path, std::to_string(name.size()) + " characters; " + whose + " name has at most 63");
  if (!is_object_name(name)) {
    fail(path, "'" + name + "' must be letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
}

YAML::Node Reader::first_container(const YAML::Node& containers, const std::string& path) const {
  if (!containers || !containers.IsSequence() || containers.size() == 0) fail(path, "must list at least one container");
  return containers[0];
}

std::vector<std::string> Reader::command_and_args(const YAML::Node& container, const std::string& path) const {
  std::vector<std::string> command;
  if (container["command"]) command = strings(container["command"], path + ".command");
  // Without a command Kubernetes runs the image's ENTRYPOINT with these args; there is no
  // image here, so running the args alone would start '--backend' as a program.
  if (container["args"] && !container["command"]) {
    fail(path + ".command", "missing: args without command run the image's ENTRYPOINT, and cohort runs no images; "
                            "give command: the program that ENTRYPOINT runs (e.g. [python3, /opt/mnist/mnist.py])");
  }
  if (container["args"]) {
    auto args = strings(container["args"], path + ".args");
    command.insert(command.end(), args.begin(), args.end());
  }
  return command;
}

std::string read_spec_file(const std::string& path, const std::string& what) {
  auto text = read_file(path);
  if (!text) throw input_error(path + ": cannot read " + what + " (does it exist?)");
  return std::move(*text);
}

void Reader::shape_error(const YAML::Exception& e) const {
  throw input_error(source_ + ": a field holds the wrong kind of value (" + e.msg +
                    "): check that mappings, lists and single values are where the format puts them");
}

namespace {

// A spec is a page or two; these bounds are far above any real one. An alias stands for a
// whole node again, so a few kilobytes can stand for gigabytes ("billion laughs") and a
// reader that walks the document pays for every repetition: the bounds apply to the
// document with its aliases expanded.
constexpr std::size_t kMostBytes = 16 << 20;
constexpr std::size_t kMostNodes = 100'000;

std::string mib(std::size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

}  // namespace

void Reader::check_expanded_size(const YAML::Node& root) const {
  // Without recursion, and counted as nodes are reached rather than when they are visited,
  // so that the walk stops within the bounds even for an alias that contains itself.
  std::vector<YAML::Node> pending{root};
  std::size_t nodes = 1, bytes = 0;
  auto reach = [&](const YAML::Node& n) {
    if (++nodes > kMostNodes) {
      throw input_error(source_ + ": more than " + std::to_string(kMostNodes) +
                        " values once its aliases (*name) are expanded; write the document without repeating aliases");
    }
    pending.push_back(n);
  };
  while (!pending.empty()) {
    const YAML::Node n = std::move(pending.back());
    pending.pop_back();
    switch (n.Type()) {
      case YAML::NodeType::Scalar:
        bytes += n.Scalar().size();
        if (bytes > kMostBytes) {
          throw input_error(source_ + ": more than " + mib(kMostBytes) +
                            " of text once its aliases (*name) are expanded; write the document without repeating aliases");
        }
        break;
      case YAML::NodeType::Sequence:
        for (const auto& item : n) reach(item);
        break;
      case YAML::NodeType::Map:
        for (const auto& kv : n) {
          reach(kv.first);
          reach(kv.second);
        }
        break;
      default:
        break;
    }
  }
}

YAML::Node Reader::load(const std::string& text) const {
  if (text.size() > kMostBytes) {
    throw input_error(source_ + ": " + std::to_string(text.size()) + " bytes; a spec has at most " + mib(kMostBytes));
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw input_error(source_ + ": not valid YAML: " + e.what());
  }
  check_expanded_size(doc);
  return doc;
}

}  // namespace cohort::yaml
