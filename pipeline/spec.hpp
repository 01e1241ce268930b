// pipeline/spec.hpp — a pipeline as cohort runs it: tasks, each a command line with
// placeholders, its inputs (constants, pipeline parameters, upstream outputs), its declared
// outputs, its Slurm resources, caching and retries.
//
// Two spellings read into it: the KFP v2 compiled IR that `kfp.compiler.Compiler` writes
// (pipelineInfo, components, deploymentSpec, root.dag), so that pipelines written for
// Kubeflow run unchanged, and cohort's short native YAML (name, params, steps). Both are
// checked whole before anything runs: a cycle, a reference to a missing task or output, a
// placeholder naming no input, an unknown field, each an input error naming the file, the
// task and the field:
//   "p.yaml: root.dag.tasks.train.inputs.artifacts.data: task 'prep' has no output artifact 'dataset' (it has: model)"
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cohort::pipeline {

// Where an input's value comes from.
struct InputSource {
  enum class Kind { constant, pipeline_parameter, task_parameter, task_artifact };
  Kind kind = Kind::constant;
  std::string value;      // a constant's text, or the pipeline parameter's name
  std::string task;       // the producer, for task outputs
  std::string output;     // the producer's output
};

struct Input {
  std::string name;
  bool artifact = false;  // an artifact is passed as a path, a parameter as its value
  InputSource source;
};

// What sbatch is asked for; empty and zero fields are left to Slurm's defaults.
struct Resources {
  int nodes = 0;
  int ntasks = 0;
  int cpus = 0;           // per task
  int gpus = 0;
  std::string mem;        // "8G"
  std::string time;       // Slurm time limit
  std::string partition;
};

struct Task {
  std::string name;
  std::string where;                 // its place in the file, for messages: "root.dag.tasks.train"
  // The command line, placeholders in KFP's spelling ({{$.inputs.parameters['k']}}).
  std::vector<std::string> command;
  std::string image;                 // KFP's container image; see docs/pipelines.md
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> after;    // every task this one waits for, sorted
  std::vector<Input> inputs;
  std::vector<std::string> output_parameters;
  std::vector<std::string> output_artifacts;
  // An output artifact's type as ML Metadata names it (Dataset, Model, …); "Artifact" when
  // the pipeline gives none.
  std::map<std::string, std::string> artifact_types;
  bool cache = true;
  int max_retries = 0;               // retryPolicy.maxRetryCount
  Resources resources;

  const Input* input(const std::string& name, bool artifact) const;
  std::string artifact_type(const std::string& output) const;
};

struct Parameter {
  std::string name;
  std::optional<std::string> default_value;
};

struct Pipeline {
  std::string name;
  std::string format;                // "kfp" or "cohort"
  std::vector<Parameter> parameters;
  std::vector<Task> tasks;           // upstream before downstream
  std::vector<std::string> notes;    // what was read but does not apply here, one line each

  const Task* task(const std::string& name) const;
  // The tasks downstream of `name`, itself excluded.
  std::vector<std::string> downstream(const std::string& name) const;
};

// Reads a pipeline in either spelling (a document with `deploymentSpec` or `root` is KFP's).
// Throws cohort::Error of kind input naming `source`, the task and the field.
Pipeline parse_pipeline(const std::string& text, const std::string& source);
Pipeline load_pipeline(const std::filesystem::path& path);

// Every pipeline parameter's value: `given` ("NAME=VALUE" from --param) over the defaults.
// A name the pipeline does not have, and a parameter left without a value, are input
// errors naming it.
std::map<std::string, std::string> parameter_values(const Pipeline& pipeline, const std::vector<std::string>& given);

}  // namespace cohort::pipeline
