// pipeline/placeholder.hpp — KFP's placeholders in a command line, found and filled in.
//
//   {{$.inputs.parameters['k']}}             the input parameter's value
//   {{$.inputs.artifacts['k'].path}}         the input artifact's path (.uri: the same path)
//   {{$.outputs.artifacts['k'].path}}        where the task writes its output artifact
//   {{$.outputs.parameters['k'].output_file}} the file the task writes an output value into
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace cohort::pipeline {

struct Placeholder {
  enum class Kind { input_parameter, input_artifact, output_artifact, output_parameter };
  Kind kind;
  std::string name;
  std::string text;  // as written, braces included
};

// Every placeholder in `arg`, in order. One that cohort does not know, or does not run yet
// ({{$}}, the executor input of KFP's Python components), is an input error `fail` is told
// of ("{{$}}: ... not supported yet").
std::vector<Placeholder> placeholders_in(const std::string& arg, const std::function<void(const std::string&)>& fail);

// What each placeholder stands for when the task runs.
struct Bindings {
  std::map<std::string, std::string> input_parameters;  // name → value
  std::map<std::string, std::string> input_artifacts;   // name → path
  std::map<std::string, std::string> output_artifacts;  // name → path to write
  std::map<std::string, std::string> output_parameters; // name → file to write the value into
};

// `arg` with every placeholder replaced; one that `bindings` lacks throws cohort::Error
// naming it (a pipeline that was checked never has one).
std::string resolve(const std::string& arg, const Bindings& bindings);

// The placeholders' spelling, for the native YAML's translation and for tests.
std::string input_parameter_placeholder(const std::string& name);
std::string input_artifact_placeholder(const std::string& name);
std::string output_artifact_placeholder(const std::string& name);
std::string output_parameter_placeholder(const std::string& name);

}  // namespace cohort::pipeline
