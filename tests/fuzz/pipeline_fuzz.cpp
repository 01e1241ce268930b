// Fuzzing pipelines (pipeline/spec.hpp), in both spellings: a pipeline is read or refused
// with an input error, and one that is read is a DAG, upstream first, whose every
// placeholder names an input bound to its task or an output it declares, and whose
// outputs are plain names that stay inside the task's directory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "common/error.hpp"
#include "pipeline/placeholder.hpp"
#include "pipeline/spec.hpp"

using namespace cohort;
using namespace cohort::pipeline;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Pipeline p;
  try {
    p = parse_pipeline(text, "p.yaml");
  } catch (const Error&) {
    return 0;
  }
  if (p.tasks.empty()) std::abort();
  std::set<std::string> seen;
  for (const auto& t : p.tasks) {
    for (const auto& a : t.after) {
      if (!seen.count(a)) std::abort();  // an upstream task after its dependant
    }
    for (const auto* outs : {&t.output_artifacts, &t.output_parameters}) {
      for (const auto& o : *outs) {
        if (o.empty() || o.find('/') != std::string::npos || o == "." || o == "..") std::abort();
      }
    }
    Bindings b;
    for (const auto& in : t.inputs) (in.artifact ? b.input_artifacts : b.input_parameters)[in.name] = "v";
    for (const auto& o : t.output_artifacts) b.output_artifacts[o] = "a";
    for (const auto& o : t.output_parameters) b.output_parameters[o] = "p";
    for (const auto& c : t.command) resolve(c, b);  // throws, and so aborts, on a placeholder left unbound
    seen.insert(t.name);
  }
  try {
    parameter_values(p, {});
  } catch (const Error&) {
  }
  return 0;
}
