// Reading Katib Experiment specs: field names, defaults, and errors that name the field.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "common/error.hpp"
#include "launcher/job_spec.hpp"
#include "tuner/experiment.hpp"
#include "tuner/runner.hpp"
#include "tuner/sampler.hpp"

namespace cohort::tuner {
namespace {

const std::string kMinimal = R"(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random}
maxTrialCount: 4
parameters:
  - {name: lr, parameterType: double, feasibleSpace: {min: "0.001", max: "0.1", distribution: logUniform}}
trialTemplate:
  trialParameters: [{name: learningRate, reference: lr}]
  command: [python3, train.py, "--lr=${trialParameters.learningRate}"]
)";

std::string error_of(const std::string& yaml) {
  try {
    parse_experiment(yaml, "exp.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "(no error)";
}

std::string fixture(const std::string& name) { return std::string(COHORT_TUNER_FIXTURES) + "/" + name; }

TEST(Experiment, ReadsTheSpecFieldsAtTopLevelWithKatibDefaults) {
  Experiment e = parse_experiment(kMinimal, "/x/exp.yaml");
  EXPECT_EQ(e.name, "exp");
  EXPECT_EQ(e.objective.type, Goal::minimize);
  EXPECT_EQ(e.objective.metric, "loss");
  EXPECT_EQ(e.algorithm, "random");
  EXPECT_EQ(e.parallel_trial_count, 3);
  EXPECT_EQ(e.max_trial_count, 4);
  EXPECT_FALSE(e.max_failed_trial_count);
  ASSERT_EQ(e.parameters.size(), 1u);
  EXPECT_EQ(e.parameters[0].distribution, Distribution::log_uniform);
  EXPECT_DOUBLE_EQ(e.parameters[0].min, 0.001);
  EXPECT_EQ(e.objective.strategy("loss"), MetricStrategy::min);
  EXPECT_EQ(e.objective.strategy("accuracy"), MetricStrategy::latest);
}

TEST(Experiment, IsNamedByItsMetadataRatherThanItsFile) {
  EXPECT_EQ(parse_experiment("metadata: {name: zed}\n" + std::string(kMinimal), "/x/exp.yaml").name, "zed");
  std::string whole = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata:\n  name: fashion-mnist\nspec:\n";
  std::istringstream lines{std::string(kMinimal)};
  for (std::string line; std::getline(lines, line);) whole += "  " + line + "\n";
  EXPECT_EQ(parse_experiment(whole, "/x/experiment.yaml").name, "fashion-mnist");
}

TEST(Experiment, ReadsAWholeKatibDocumentWithNumbersAsStringsAndAJobTrialSpec) {
  Experiment e = load_experiment(fixture("katib-job.yaml"));
  EXPECT_EQ(e.name, "katib-job");
  EXPECT_EQ(e.parallel_trial_count, 2);
  EXPECT_EQ(e.max_trial_count, 4);
  EXPECT_EQ(e.max_failed_trial_count, 1);
  EXPECT_EQ(e.objective.goal, -1.0);
  EXPECT_EQ(e.objective.additional, std::vector<std::string>{"accuracy"});
  EXPECT_EQ(e.setting("random_state"), "11");
  ASSERT_EQ(e.command.size(), 3u);
  EXPECT_EQ(e.command[0], "sh");
  EXPECT_EQ(e.command[1], "-c");
  EXPECT_EQ(e.parameters[1].type, ParameterType::categorical);
  EXPECT_EQ(e.parameters[1].list, (std::vector<std::string>{"sgd", "adam"}));
}

TEST(Experiment, TrialParametersAreSubstitutedInTheCommandAndExported) {
  Experiment e = parse_experiment(kMinimal, "exp.yaml");
  Assignment a{{"lr", "0.01"}};
  EXPECT_EQ(e.command_for(a), (std::vector<std::string>{"python3", "train.py", "--lr=0.01"}));
  EXPECT_EQ(e.environment_for({{"learning-rate", "0.5"}}), std::vector<std::string>{"COHORT_PARAM_LEARNING_RATE=0.5"});
}

TEST(Experiment, MinGreaterThanMaxNamesTheFeasibleSpace) {
  std::string yaml = R"(
apiVersion: kubeflow.org/v1beta1
kind: Experiment
spec:
  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm: {algorithmName: random}
  maxTrialCount: 3
  parameters:
    - {name: a, parameterType: int, feasibleSpace: {min: "1", max: "4"}}
    - {name: b, parameterType: categorical, feasibleSpace: {list: [x, y]}}
    - {name: c, parameterType: double, feasibleSpace: {min: "0.5", max: "0.1"}}
  trialTemplate: {command: [true]}
)";
  EXPECT_EQ(error_of(yaml), "exp.yaml: spec.parameters[2].feasibleSpace: min (0.5) is greater than max (0.1)");
}

TEST(Experiment, MisspelledFieldIsNamedWithItsPath) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("max: \"0.1\""), 3, "mx");
  EXPECT_NE(error_of(yaml).find("exp.yaml: parameters[0].feasibleSpace.mx: unknown field"), std::string::npos)
      << error_of(yaml);
  EXPECT_NE(error_of(kMinimal + "parallelTrialcount: 2\n").find("parallelTrialcount: unknown field"), std::string::npos);
}

TEST(Experiment, AValueOfTheWrongKindIsAnInputErrorNamingTheFile) {
  std::string yaml = kMinimal;
  const auto at = yaml.find("  command:");
  yaml.replace(at, yaml.find('\n', at) - at, "  trialSpec: {kind: Job, spec: x}");
  EXPECT_EQ(error_of(yaml).rfind("exp.yaml: ", 0), 0u) << error_of(yaml);
}

TEST(Experiment, EmptyListIsRefused) {
  std::string yaml = R"(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: random}
maxTrialCount: 4
parameters:
  - {name: opt, parameterType: categorical, feasibleSpace: {list: []}}
trialTemplate: {command: [true]}
)";
  EXPECT_EQ(error_of(yaml), "exp.yaml: parameters[0].feasibleSpace.list: is empty: give at least one value");
}

TEST(Experiment, UnknownAlgorithmListsTheKnownOnes) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("random"), 6, "annealing");
  EXPECT_NE(error_of(yaml).find("algorithm.algorithmName: 'annealing' is not an algorithm (expected one of: grid, random"),
            std::string::npos)
      << error_of(yaml);
}

TEST(Experiment, SettingsAndRangesTooLargeToComputeOnAreRefused) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("{algorithmName: random}"), 23,
               "{algorithmName: tpe, algorithmSettings: [{name: n_ei_candidates, value: \"4294967296\"}]}");
  EXPECT_NE(error_of(yaml).find("n_ei_candidates must be at most 10000"), std::string::npos) << error_of(yaml);
  yaml = kMinimal;
  const std::string space = "{min: \"0.001\", max: \"0.1\", distribution: logUniform}";
  yaml.replace(yaml.find(space), space.size(), "{min: \"0\", max: \"1\", step: \"1e-300\"}");
  EXPECT_NE(error_of(yaml).find("feasibleSpace.step: min..max in these steps holds more than"), std::string::npos)
      << error_of(yaml);
}

TEST(Experiment, UnknownAlgorithmSettingIsNamed) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("{algorithmName: random}"), 23,
               "{algorithmName: random, algorithmSettings: [{name: random_stat, value: \"1\"}]}");
  EXPECT_NE(error_of(yaml).find("algorithm.algorithmSettings[0].name: 'random_stat' is not a setting of random"),
            std::string::npos)
      << error_of(yaml);
}

TEST(Experiment, UnknownTrialParameterInTheCommandIsRefused) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("trialParameters.learningRate"), 28, "trialParameters.lrate");
  EXPECT_NE(error_of(yaml).find("'${trialParameters.lrate}' names no entry of trialTemplate.trialParameters"),
            std::string::npos)
      << error_of(yaml);
}

TEST(Experiment, GridNeedsAStepForDoublesAndDefaultsMaxTrialCountToTheGridSize) {
  std::string yaml = R"(
objective: {type: minimize, objectiveMetricName: loss}
algorithm: {algorithmName: grid}
parameters:
  - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
trialTemplate: {command: [true]}
)";
  EXPECT_NE(error_of(yaml).find("algorithm: grid needs a step for the double parameter 'x'"), std::string::npos)
      << error_of(yaml);
  yaml.replace(yaml.find("max: \"1\""), 8, "max: \"1\", step: \"0.25\"");
  EXPECT_EQ(parse_experiment(yaml, "exp.yaml").max_trial_count, 5);
}

TEST(Experiment, RandomWithoutMaxTrialCountIsRefused) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("maxTrialCount: 4"), 16, "");
  EXPECT_EQ(error_of(yaml), "exp.yaml: maxTrialCount: missing: how many trials should the sweep run?");
}

TEST(Experiment, MedianStopSettingsAreChecked) {
  std::string yaml = kMinimal + "earlyStopping: {algorithmName: medianstop, algorithmSettings: [{name: start_steps, value: \"2\"}]}\n";
  EXPECT_NE(error_of(yaml).find("earlyStopping.algorithmSettings[0].name: 'start_steps' is not a medianstop setting"),
            std::string::npos)
      << error_of(yaml);
  yaml = kMinimal + "earlyStopping: {algorithmName: medianstop, algorithmSettings: [{name: start_step, value: \"two\"}]}\n";
  EXPECT_NE(error_of(yaml).find("earlyStopping.algorithmSettings[0].value: must be a whole number"), std::string::npos)
      << error_of(yaml);
}

TEST(Experiment, EarlyStoppingNamesAStopperOfTheTable) {
  std::string yaml = kMinimal + "earlyStopping: {algorithmName: truncation}\n";
  EXPECT_EQ(error_of(yaml),
            "exp.yaml: earlyStopping.algorithmName: 'truncation' is not an early-stopping algorithm (expected one of: "
            "medianstop)");
  yaml = kMinimal + "earlyStopping: {algorithmName: MedianStop, algorithmSettings: [{name: start_step, value: \"0\"}]}\n";
  EXPECT_EQ(error_of(yaml), "exp.yaml: earlyStopping.algorithmSettings[0].value: must be 1..1000000 (got 0)");
  yaml = kMinimal + "earlyStopping: {algorithmName: MedianStop, algorithmSettings: [{name: start_step, value: \"2\"}]}\n";
  Experiment e = parse_experiment(yaml, "exp.yaml");
  EXPECT_EQ(e.early_stopping, "medianstop");
  EXPECT_EQ(e.early_stopping_setting("start_step"), "2");
}

TEST(Experiment, LogUniformNeedsAPositiveMin) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("\"0.001\""), 7, "\"0\"");
  EXPECT_EQ(error_of(yaml), "exp.yaml: parameters[0].feasibleSpace.min: a logUniform distribution needs min > 0 (got 0)");
}

// Names, times and references of any length are read without recursion: a 50 000-character
// one is an error naming its length, not a crash.
TEST(Experiment, OverlongNamesTimesAndReferencesAreInputErrors) {
  const std::string huge(50000, 'a');
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("{name: lr,"), 10, "{name: " + huge + ",");
  EXPECT_EQ(error_of(yaml), "exp.yaml: parameters[0].name: 50000 characters; a name has at most 256");

  yaml = kMinimal + "  resources: {time: \"" + std::string(50000, '1') + "\"}\n";
  EXPECT_EQ(error_of(yaml), "exp.yaml: trialTemplate.resources.time: 50000 characters; a Slurm time has at most 32 (D-HH:MM:SS)");

  yaml = kMinimal;
  yaml.replace(yaml.find("${trialParameters.learningRate}"), 31, "${trialParameters." + huge + "}");
  EXPECT_NE(error_of(yaml).find("trialTemplate.command: a ${trialParameters...} reference of 50000 characters"),
            std::string::npos)
      << error_of(yaml).substr(0, 200);

  yaml = kMinimal;
  yaml.replace(yaml.find("[{name: learningRate,"), 21, "[{name: " + huge + ",");
  EXPECT_EQ(error_of(yaml), "exp.yaml: trialTemplate.trialParameters[0].name: 50000 characters; a name has at most 256");

  yaml = "metadata: {name: " + huge + "}\n" + kMinimal;
  EXPECT_EQ(error_of(yaml), "exp.yaml: metadata.name: 50000 characters; an experiment's name has at most 63");
}

TEST(Experiment, SlurmTimesAreCheckedByTheirShape) {
  for (const char* ok : {"30", "30:00", "01:00:00", "2-12", "2-12:30", "2-12:30:00"}) {
    Experiment e = parse_experiment(kMinimal + "  resources: {time: \"" + ok + "\"}\n", "exp.yaml");
    EXPECT_EQ(e.resources.time, ok);
  }
  for (const char* bad : {"", "1:", ":1", "1:2:3:4", "1-", "-1", "1-2-3", "1h", "1:2-3"}) {
    EXPECT_NE(error_of(kMinimal + "  resources: {time: \"" + bad + "\"}\n").find("is not a Slurm time"), std::string::npos)
        << bad;
  }
}

TEST(Experiment, AnUnclosedReferenceIsLeftAsWritten) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("train.py,"), 9, "\"${trialParameters.x\",");
  Experiment e = parse_experiment(yaml, "exp.yaml");
  EXPECT_EQ(e.command_for({{"lr", "0.5"}}),
            (std::vector<std::string>{"python3", "${trialParameters.x", "--lr=0.5"}));
}

// A number a sampler cannot compute on exactly is refused, rather than sampled as the
// neighbouring integer or as infinity.
TEST(Experiment, BoundsSamplersCannotComputeOnAreRefused) {
  std::string yaml = kMinimal;
  yaml.replace(yaml.find("{name: lr, parameterType: double,"), 33, "{name: lr, parameterType: int,");
  yaml.replace(yaml.find("{min: \"0.001\", max: \"0.1\", distribution: logUniform}"), 52,
               "{min: 1152921504606846976, max: 1152921504606846986}");
  EXPECT_EQ(error_of(yaml),
            "exp.yaml: parameters[0].feasibleSpace.min: must be -9007199254740992..9007199254740992 (got 1152921504606846976)");
  yaml = kMinimal;
  yaml.replace(yaml.find("{min: \"0.001\", max: \"0.1\", distribution: logUniform}"), 52, "{min: -1e308, max: 1e308}");
  EXPECT_EQ(error_of(yaml),
            "exp.yaml: parameters[0].feasibleSpace: min (-1e308) to max (1e308) is wider than a double holds: narrow the range");
}

TEST(Experiment, NotYamlIsAnInputError) {
  EXPECT_NE(error_of("objective: [unclosed").find("exp.yaml: not valid YAML"), std::string::npos);
}

// Katib's own examples (fixtures/katib/SOURCES.md), read as published.
std::string katib(const std::string& name) { return std::string(COHORT_TUNER_FIXTURES) + "/katib/" + name; }

std::string load_error(const std::string& path) {
  try {
    load_experiment(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "accepted";
}

TEST(KatibExamples, EveryHpTuningExampleWithASupportedAlgorithmLoads) {
  for (const char* name : {"bayesian-optimization.yaml", "grid.yaml", "hyperband.yaml", "hyperopt-distribution.yaml", "multivariate-tpe.yaml",
                           "optuna-distribution.yaml", "random.yaml", "sobol.yaml", "tpe.yaml", "median-stop.yaml"}) {
    EXPECT_EQ(load_error(katib(name)), "accepted") << name;
  }
  Experiment random = load_experiment(katib("random.yaml"));
  EXPECT_EQ(random.command.at(1), "/opt/pytorch-mnist/mnist.py");
  EXPECT_EQ(random.resources.cpus_per_task, 1);  // cpu: "0.5", rounded up
}

// A PyTorchJob trial, as Katib runs it through the Training Operator: `cohort launch` runs
// the job spec, its parameters filled in, in one array task of a task per replica.
TEST(KatibExamples, APyTorchJobTrialRunsItsSpecThroughCohortLaunchInOneAllocation) {
  Experiment e = load_experiment(katib("pytorchjob-mnist.yaml"));
  EXPECT_TRUE(e.metrics_from_rank_0);
  EXPECT_EQ(e.resources.ntasks, 2);  // the master and a worker
  EXPECT_EQ(e.resources.nodes, 0);   // wherever Slurm places them
  ASSERT_EQ(e.command.size(), 4u);
  EXPECT_EQ(e.command[1], "launch");
  EXPECT_EQ(e.command[2], "--spec-yaml");
  const auto argv = e.command_for({{"lr", "0.03"}, {"momentum", "0.7"}});
  const launcher::JobSpec job = launcher::parse_job_spec(argv[3], "trial");
  EXPECT_EQ(job.kind, launcher::JobKind::pytorch);
  ASSERT_EQ(job.roles.size(), 2u);
  EXPECT_EQ(job.roles[0].command, (std::vector<std::string>{"python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1",
                                                            "--batch-size=16", "--lr=0.03", "--momentum=0.7"}));
  EXPECT_EQ(job.backoff_limit, 6);  // OnFailure without backoffLimit: Kubernetes' default

  // An MPIJob's launcher runs in the batch step, a task per worker beside it; its output is
  // the trial's, unlabelled.
  const std::string head =
      "objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\nmaxTrialCount: 1\n"
      "parameters: [{name: x, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}]\n";
  Experiment mpi = parse_experiment(
      head + "trialTemplate: {trialSpec: {kind: MPIJob, spec: {mpiReplicaSpecs: {Launcher: {command: [mpirun, a]}, "
             "Worker: {replicas: 3, resources: {cpus: 2}}}}}}\n",
      "exp.yaml");
  EXPECT_FALSE(mpi.metrics_from_rank_0);
  EXPECT_EQ(mpi.resources.ntasks, 3);
  EXPECT_EQ(mpi.resources.cpus_per_task, 2);

  // Roles of different shapes cannot share one array task.
  const std::string uneven =
      "objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\nmaxTrialCount: 1\n"
      "parameters: [{name: x, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}]\n"
      "trialTemplate: {trialSpec: {kind: TFJob, spec: {tfReplicaSpecs: {Chief: {command: [a]}, "
      "Worker: {replicas: 2, resources: {cpus: 2}, command: [a]}}}}}\n";
  EXPECT_NE(error_of(uneven).find("trialTemplate.trialSpec: its roles ask for different CPUs"), std::string::npos)
      << error_of(uneven);
  // A bad job spec is named as the job spec's own error.
  EXPECT_NE(error_of("objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\n"
                     "maxTrialCount: 1\nparameters: [{name: x, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}]\n"
                     "trialTemplate: {trialSpec: {kind: PyTorchJob, spec: {pytorchReplicaSpecs: {Master: {replicas: 0, "
                     "command: [a]}}}}}\n")
                .find("replicas"),
            std::string::npos);
}

TEST(KatibExamples, HyperbandTakesKatibsRlAsTheLargestBudget) {
  // resource_name num-epochs has min = max = 1: only r_l gives the rungs (1 and 2).
  Experiment e = load_experiment(katib("hyperband.yaml"));
  auto sampler = make_sampler(e, 1);
  auto first = sampler->suggest(0, {});
  ASSERT_TRUE(first);
  EXPECT_EQ(to_assignment(e, *first).at(2).second, "1");
  EXPECT_NE(error_of("objective: {type: minimize, objectiveMetricName: loss}\nmaxTrialCount: 2\n"
                     "algorithm: {algorithmName: hyperband, algorithmSettings: [{name: resource_name, value: e}, "
                     "{name: r_l, value: \"1\"}]}\n"
                     "parameters: [{name: e, parameterType: int, feasibleSpace: {min: \"1\", max: \"1\"}}]\n"
                     "trialTemplate: {command: [a]}\n")
                .find("r_l (the largest budget) must be at least eta (3)"),
            std::string::npos);
}

TEST(KatibExamples, AlgorithmsCohortLacksAreNamedWithWhatToUseInstead) {
  EXPECT_NE(load_error(katib("cma-es.yaml")).find("spec.algorithm.algorithmName: 'cmaes': Katib's CMA-ES (from goptuna) is not supported here"),
            std::string::npos);
  EXPECT_NE(load_error(katib("simple-pbt.yaml")).find("'pbt': population-based training is not supported here"), std::string::npos);
}

std::string with_collector(const std::string& collector) {
  return "objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\nmaxTrialCount: 1\n"
         "parameters: [{name: x, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}]\n"
         "trialTemplate: {command: [a]}\nmetricsCollectorSpec: " + collector + "\n";
}

TEST(Experiment, ReadsKatibsStdOutAndFileCollectorsWithTheirFilters) {
  Experiment e = parse_experiment(with_collector("{collector: {kind: File}, source: {fileSystemPath: {path: metrics.json, "
                                                 "kind: File, format: JSON}}}"),
                                  "exp.yaml");
  EXPECT_EQ(e.metrics.file, "metrics.json");
  EXPECT_EQ(e.metrics.format, MetricsFormat::json);
  e = parse_experiment(with_collector("{collector: {kind: StdOut}, source: {filter: {metricsFormat: ['([\\w-]+)=(\\d+)']}}}"), "exp.yaml");
  EXPECT_TRUE(e.metrics.file.empty());
  EXPECT_EQ(e.metrics.filters, std::vector<std::string>{"([\\w-]+)=(\\d+)"});
  auto error = [](const std::string& collector) {
    try {
      parse_experiment(with_collector(collector), "exp.yaml");
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(error("{collector: {kind: File}}"), "exp.yaml: metricsCollectorSpec.source: a File collector needs fileSystemPath: {path, format}");
  EXPECT_EQ(error("{collector: {kind: File}, source: {fileSystemPath: {path: m.log, format: CSV}}}"),
            "exp.yaml: metricsCollectorSpec.source.fileSystemPath.format: 'CSV' (expected TEXT or JSON)");
  EXPECT_NE(error("{collector: {kind: TensorFlowEvent}}").find("collector.kind: 'TensorFlowEvent'"), std::string::npos);
  EXPECT_NE(error("{source: {filter: {metricsFormat: ['(a']}}}").find("metricsFormat[0]: '(a' is not a regular expression"),
            std::string::npos);
}

TEST(Experiment, TheTrialRunsInThePrimaryContainer) {
  const std::string spec =
      "objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\nmaxTrialCount: 1\n"
      "parameters: [{name: x, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}]\n"
      "trialTemplate:\n  primaryContainerName: %s\n  trialSpec: {kind: Job, spec: {template: {spec: {containers: "
      "[{name: sidecar, command: [sleep, inf]}, {name: training, command: [python3, train.py]}]}}}}\n";
  char text[1024];
  std::snprintf(text, sizeof text, spec.c_str(), "training");
  EXPECT_EQ(parse_experiment(text, "exp.yaml").command, (std::vector<std::string>{"python3", "train.py"}));
  std::snprintf(text, sizeof text, spec.c_str(), "trainer");
  EXPECT_EQ(error_of(text), "exp.yaml: trialTemplate.trialSpec.spec.template.spec.containers: no container is named "
                            "'trainer', the trialTemplate's primaryContainerName");
}

TEST(Experiment, GpuAndCpuLimitsOfAJobTrialSpecReachTheArrayJob) {
  Experiment e = parse_experiment(
      "objective: {type: minimize, objectiveMetricName: loss}\nalgorithm: {algorithmName: random}\nmaxTrialCount: 1\n"
      "parameters: [{name: x, parameterType: int, feasibleSpace: {min: \"1\", max: \"2\"}}]\n"
      "trialTemplate: {trialSpec: {kind: Job, spec: {template: {spec: {containers: [{command: [a], resources: "
      "{limits: {cpu: 1500m, memory: 2Gi, nvidia.com/gpu: 2}}}]}}}}}\n",
      "exp.yaml");
  EXPECT_EQ(e.resources.gpus, 2);
  EXPECT_EQ(e.resources.cpus_per_task, 2);
  EXPECT_NE(array_script(e, "/tmp/sweep", "cohort").find("#SBATCH --gpus=2\n"), std::string::npos);
}

}  // namespace
}  // namespace cohort::tuner
