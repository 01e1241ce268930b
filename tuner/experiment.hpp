// tuner/experiment.hpp — a Katib v1beta1 Experiment, as `cohort sweep` reads it.
//
// Either a whole Katib document or the fields of its `spec:` at the top level:
//
//   apiVersion: kubeflow.org/v1beta1
//   kind: Experiment
//   metadata: {name: mnist-lr}
//   spec:
//     objective: {type: minimize, goal: 0.05, objectiveMetricName: loss,
//                 additionalMetricNames: [accuracy]}
//     algorithm: {algorithmName: tpe, algorithmSettings: [{name: random_state, value: "7"}]}
//     earlyStopping: {algorithmName: medianstop,
//                     algorithmSettings: [{name: min_trials_required, value: "3"}]}
//     parallelTrialCount: 2
//     maxTrialCount: 20
//     maxFailedTrialCount: 3
//     parameters:
//       - {name: lr, parameterType: double,
//          feasibleSpace: {min: "0.0001", max: "0.1", distribution: logUniform}}
//       - {name: optimizer, parameterType: categorical, feasibleSpace: {list: [sgd, adam]}}
//     trialTemplate:
//       trialParameters: [{name: learningRate, reference: lr}]
//       command: [python3, train.py, "--lr=${trialParameters.learningRate}"]
//       resources: {nodes: 1, ntasks: 1, cpusPerTask: 4, gpus: 1, time: "01:00:00"}
//
// A Katib `trialTemplate.trialSpec` (a Kubernetes Job) may stand in for `command`: its
// first container's command followed by its args, and its resource limits (CPUs rounded
// up, GPUs) for `resources` when that is not given. metricsCollectorSpec may name a StdOut
// collector (the default) or a File collector, with Katib's metricsFormat filters. Numbers may be written as strings, as
// Katib writes them. Unknown fields, and spaces that cannot be searched, are errors that
// name the field.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cohort::tuner {

enum class ParameterType { double_, int_, discrete, categorical };
// normal and log_normal are Katib's (its hyperopt suggestion's): centred on the middle of
// min..max (of its logarithms) with sigma a sixth of the width, and cut off at min and max,
// since a trial must stay in its feasible space.
enum class Distribution { uniform, log_uniform, normal, log_normal };
enum class Goal { minimize, maximize };

struct Parameter {
  std::string name;
  ParameterType type = ParameterType::double_;
  double min = 0, max = 0;          // double and int
  std::optional<double> step;       // double and int: values are min + k·step
  Distribution distribution = Distribution::uniform;
  // Whether values spread over the logarithm of min..max (logUniform, logNormal).
  bool log_scale() const { return distribution == Distribution::log_uniform || distribution == Distribution::log_normal; }
  std::vector<std::string> list;    // discrete (numbers as written) and categorical

  // How many values the parameter takes; nullopt for a continuous double.
  std::optional<long long> cardinality() const;
};

// One value per parameter, in the order of Experiment::parameters, as text: the way the
// trial sees it (Katib's parameterAssignments are strings too).
using Assignment = std::vector<std::pair<std::string, std::string>>;

struct Setting {
  std::string name;
  std::string value;
};

// Reports a problem with a part of the experiment that an algorithm or a stopper checks:
// `field` under that part (spec.algorithm, spec.earlyStopping) and why. Never returns.
using SpecError = std::function<void(const std::string& field, const std::string& why)>;

// A metric's value over a trial's reports: Katib's metricStrategies.
enum class MetricStrategy { min, max, latest };

struct Objective {
  Goal type = Goal::minimize;
  std::optional<double> goal;
  std::string metric;                      // objectiveMetricName
  std::vector<std::string> additional;     // additionalMetricNames
  std::vector<std::pair<std::string, MetricStrategy>> strategies;  // as given

  // The strategy for `metric`: as given, else the objective's direction for the objective
  // metric and `latest` for the others.
  MetricStrategy strategy(const std::string& metric) const;
  // True when `a` is strictly better than `b` for this objective.
  bool better(double a, double b) const { return type == Goal::minimize ? a < b : a > b; }
  bool reached(double value) const { return goal && (type == Goal::minimize ? value <= *goal : value >= *goal); }
};

// Where each trial runs when the sweep is an array job; passed to sbatch.
struct TrialResources {
  int nodes = 1;          // 0: as many as Slurm places the tasks on
  int ntasks = 1;
  int cpus_per_task = 1;
  int gpus = 0;           // per trial
  std::string time;       // Slurm time limit ("01:00:00"); empty: the partition's
};

// Where a trial's metrics are read: Katib's metricsCollectorSpec.
enum class MetricsFormat { text, json };
struct MetricsSource {
  // collector.kind StdOut (the default): the trial's stdout and stderr, as Katib reads a
  // container's whole log. File: the file at `file` (fileSystemPath.path; a relative one is
  // in the trial's directory), read as it grows.
  std::string file;
  MetricsFormat format = MetricsFormat::text;  // fileSystemPath.format; json only for a File
  // filter.metricsFormat: regular expressions whose group 1 is a name and group 2 a value;
  // empty: Katib's default, name=value.
  std::vector<std::string> filters;
};

struct Experiment {
  std::string name;                 // metadata.name, else the file's stem
  Objective objective;
  std::string algorithm;            // algorithmName, lower case
  std::vector<Setting> algorithm_settings;
  std::string early_stopping;       // empty, or a stopper's name (stopper.hpp)
  std::vector<Setting> early_stopping_settings;
  std::vector<Parameter> parameters;
  int parallel_trial_count = 3;     // Katib's default
  std::optional<int> max_trial_count;
  std::optional<int> max_failed_trial_count;
  std::string resume_policy = "Never";  // Never, LongRunning, FromVolume: all may resume here
  // trialParameters: the name used in `${trialParameters.NAME}` → the parameter it refers to.
  std::vector<std::pair<std::string, std::string>> trial_parameters;
  std::vector<std::string> command;
  TrialResources resources;
  MetricsSource metrics;
  // A trialSpec of a PyTorchJob or TFJob runs as `cohort launch --spec-yaml` in its array
  // task, every replica a task of one srun step: metrics come from rank 0's output lines
  // only (srun's "0: " label), as Katib reads the master's (or chief's) pod alone. An
  // MPIJob's launcher runs in the batch step itself, and its output is read whole.
  bool metrics_from_rank_0 = false;

  const Parameter* find(const std::string& parameter) const;
  // An algorithm or early-stopping setting, when given.
  std::optional<std::string> setting(const std::string& name) const;
  std::optional<std::string> early_stopping_setting(const std::string& name) const;
  // The trial's command line with every `${trialParameters.NAME}` replaced.
  std::vector<std::string> command_for(const Assignment& assignment) const;
  // COHORT_PARAM_<NAME>=value for every parameter (NAME upper-cased, other than letters
  // and digits as '_').
  std::vector<std::string> environment_for(const Assignment& assignment) const;
};

// Reads and validates a spec; throws cohort::Error (input) naming the file and the field:
//   "exp.yaml: spec.parameters[2].feasibleSpace: min (0.5) is greater than max (0.1)"
Experiment load_experiment(const std::string& path);
Experiment parse_experiment(const std::string& text, const std::string& source);

// "double", "int", "discrete", "categorical"; "minimize", "maximize".
const char* to_string(ParameterType type);
const char* to_string(Goal goal);

}  // namespace cohort::tuner
