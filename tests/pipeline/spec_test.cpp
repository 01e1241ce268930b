// Reading pipelines in both spellings, and the mistakes in them that must stop a run before
// anything is submitted.
#include <gtest/gtest.h>

#include <fstream>

#include "common/error.hpp"
#include "pipeline/digest.hpp"
#include "pipeline/placeholder.hpp"
#include "pipeline/spec.hpp"
#include "tests/common/temp_dir.hpp"

namespace cohort::pipeline {
namespace {

std::string fixture(const std::string& name) { return std::string(COHORT_PIPELINE_FIXTURES) + "/" + name; }

// The message of the input error reading `text` gives; empty when it reads.
std::string error_of(const std::string& text) {
  try {
    parse_pipeline(text, "p.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input) << e.what();
    return e.what();
  }
  return "";
}

// A KFP pipeline of two tasks, `a` then `b`, with `extra` spliced into b's task.
std::string kfp(const std::string& b_task_extra, const std::string& b_args = "['{{$.inputs.parameters[''x'']}}']",
                const std::string& b_input = "x: {taskOutputParameter: {producerTask: a, outputParameterKey: out}}") {
  return R"(
pipelineInfo: {name: tiny}
components:
  comp-a:
    executorLabel: exec-a
    outputDefinitions: {parameters: {out: {parameterType: STRING}}}
  comp-b:
    executorLabel: exec-b
    inputDefinitions: {parameters: {x: {parameterType: STRING}}}
deploymentSpec:
  executors:
    exec-a: {container: {image: alpine, command: [sh, -c, 'echo hi > "$0"'], args: ['{{$.outputs.parameters[''out''].output_file}}']}}
    exec-b: {container: {image: alpine, command: [echo], args: )" + b_args + R"(}}
root:
  dag:
    tasks:
      a: {componentRef: {name: comp-a}, cachingOptions: {enableCache: true}}
      b:
        componentRef: {name: comp-b}
        inputs: {parameters: {)" + b_input + R"(}}
)" + b_task_extra + "\n";
}

TEST(Spec, ReadsKfpTwoStepPipelineWithItsParameterAndDataset) {
  const Pipeline p = load_pipeline(fixture("two_step_pipeline_containerized.yaml"));
  EXPECT_EQ(p.name, "containerized-two-step-pipeline");
  EXPECT_EQ(p.format, "kfp");
  ASSERT_EQ(p.tasks.size(), 2u);
  const Task& first = p.tasks[0];
  EXPECT_EQ(first.name, "component1");
  EXPECT_EQ(first.image, "alpine");
  EXPECT_EQ(first.command.front(), "sh");
  EXPECT_EQ(first.output_artifacts, std::vector<std::string>{"output_gcs"});
  const Task& second = p.tasks[1];
  EXPECT_EQ(second.after, std::vector<std::string>{"component1"});
  const Input* in = second.input("input_gcs", true);
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->source.kind, InputSource::Kind::task_artifact);
  EXPECT_EQ(in->source.task, "component1");
  EXPECT_EQ(in->source.output, "output_gcs");
  ASSERT_EQ(p.parameters.size(), 1u);
  EXPECT_FALSE(p.parameters[0].default_value);
}

TEST(Spec, OrdersTasksUpstreamFirstWhateverTheFileOrder) {
  const Pipeline p = load_pipeline(fixture("fan_out_fan_in.yaml"));
  std::vector<std::string> names;
  for (const auto& t : p.tasks) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"make-data", "sum", "square-sum", "stamp", "report"}));
  EXPECT_EQ(p.downstream("sum"), std::vector<std::string>{"report"});
  EXPECT_EQ(p.downstream("make-data"), (std::vector<std::string>{"sum", "square-sum", "report"}));
}

TEST(Spec, IntegerDefaultsAreWholeNumbersAndEmptyCachingOptionsTurnCachingOff) {
  const Pipeline p = load_pipeline(fixture("fan_out_fan_in.yaml"));
  EXPECT_EQ(parameter_values(p, {}).at("n"), "4");
  EXPECT_TRUE(p.task("make-data")->cache);
  EXPECT_FALSE(p.task("stamp")->cache);
}

TEST(Spec, ReadsRetryPolicyAndResources) {
  std::string text = kfp("        retryPolicy: {maxRetryCount: 3, backoffDuration: 0s}");
  const std::string a = "exec-a: {container: {";
  text.replace(text.find(a), a.size(),
               "exec-a: {container: {resources: {resourceCpuLimit: 500m, resourceMemoryLimit: 16Gi, "
               "accelerator: {resourceType: NVIDIA_TESLA_T4, resourceCount: '2'}}, ");
  const Pipeline p = parse_pipeline(text, "p.yaml");
  EXPECT_EQ(p.task("b")->max_retries, 3);
  EXPECT_EQ(p.task("a")->max_retries, 0);
  EXPECT_FALSE(p.notes.empty());
  const Resources& r = p.task("a")->resources;
  EXPECT_EQ(r.cpus, 1);
  EXPECT_EQ(r.mem, "16G");
  EXPECT_EQ(r.gpus, 2);
}

TEST(Spec, ParametersFromTheCommandLineOverrideDefaultsAndUnknownOnesAreRefused) {
  const Pipeline p = load_pipeline(fixture("fan_out_fan_in.yaml"));
  EXPECT_EQ(parameter_values(p, {"label=x"}).at("label"), "x");
  try {
    parameter_values(p, {"lable=x"});
    FAIL() << "an unknown parameter was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no parameter 'lable' (it has: n, label)"), std::string::npos) << e.what();
  }
  const Pipeline two = load_pipeline(fixture("two_step_pipeline_containerized.yaml"));
  EXPECT_THROW(parameter_values(two, {}), Error);  // text has no default
}

TEST(Spec, ReadsCohortsNativeSpellingIntoTheSameTasks) {
  const Pipeline p = parse_pipeline(R"(
name: native
params: {text: hello, n: null}
steps:
  train:
    needs: [prep]
    run: [sh, -c, 'cat "$0" > "$1"', '{{steps.prep.outputs.data}}', '{{outputs.model}}']
    outputs: [model]
    slurm: {cpus: 2, gpus: 1, time: "10:00", mem: 4G}
    retries: 2
  prep:
    run: 'echo {{params.text}} > {{outputs.data}}; echo 3 > {{results.rows}}'
    outputs: [data]
    results: [rows]
  tune:
    sweep: exp.yaml
    cache: false
)",
                                    "p.yaml");
  EXPECT_EQ(p.format, "cohort");
  ASSERT_EQ(p.tasks.size(), 3u);
  EXPECT_EQ(p.tasks[0].name, "prep");
  EXPECT_EQ(p.tasks[0].command[2], "echo {{$.inputs.parameters['params.text']}} > {{$.outputs.artifacts['data'].path}}; "
                                   "echo 3 > {{$.outputs.parameters['rows'].output_file}}");
  const Task* train = p.task("train");
  EXPECT_EQ(train->command[3], "{{$.inputs.artifacts['steps.prep.outputs.data'].path}}");
  EXPECT_EQ(train->resources.cpus, 2);
  EXPECT_EQ(train->resources.gpus, 1);
  EXPECT_EQ(train->max_retries, 2);
  const Task* tune = p.task("tune");
  EXPECT_EQ(tune->command, (std::vector<std::string>{"cohort", "sweep", "run", "exp.yaml", "--dir",
                                                     "{{$.outputs.artifacts['sweep'].path}}"}));
  EXPECT_FALSE(tune->cache);
}

TEST(Spec, ACycleIsRefusedNamingItsTasks) {
  std::string text = kfp("");
  const std::string a = "a: {componentRef: {name: comp-a}, cachingOptions: {enableCache: true}}";
  text.replace(text.find(a), a.size(), "a: {componentRef: {name: comp-a}, dependentTasks: [b]}");
  const std::string e = error_of(text);
  EXPECT_NE(e.find("p.yaml: root.dag.tasks.a: the tasks a, b wait for each other in a cycle"), std::string::npos) << e;
}

TEST(Spec, AReferenceToAMissingTaskOrOutputNamesTheTaskAndField) {
  std::string e = error_of(kfp("", "['{{$.inputs.parameters[''x'']}}']",
                               "x: {taskOutputParameter: {producerTask: nope, outputParameterKey: out}}"));
  EXPECT_NE(e.find("root.dag.tasks.b.inputs.parameters.x: no task 'nope' (tasks: a, b)"), std::string::npos) << e;
  e = error_of(kfp("", "['{{$.inputs.parameters[''x'']}}']",
                   "x: {taskOutputParameter: {producerTask: a, outputParameterKey: missing}}"));
  EXPECT_NE(e.find("root.dag.tasks.b.inputs.parameters.x: task 'a' has no output parameter 'missing' (it has: out)"),
            std::string::npos)
      << e;
  e = error_of(kfp("        dependentTasks: [ghost]"));
  EXPECT_NE(e.find("root.dag.tasks.b.dependentTasks: no task 'ghost'"), std::string::npos) << e;
}

TEST(Spec, APlaceholderNamingNoInputNamesTheTaskAndArgument) {
  const std::string e = error_of(kfp("", "['{{$.inputs.parameters[''y'']}}']"));
  EXPECT_NE(e.find("root.dag.tasks.b.command[1]: {{$.inputs.parameters['y']}} names no input parameter of task 'b'"),
            std::string::npos)
      << e;
}

TEST(Spec, AnUnknownFieldIsNamedWithTheFieldsThatWouldBeRight) {
  const std::string e = error_of(kfp("        cachingOption: {enableCache: false}"));
  EXPECT_NE(e.find("root.dag.tasks.b.cachingOption: unknown field (expected one of:"), std::string::npos) << e;
  const std::string n = error_of("name: x\nsteps:\n  a: {run: 'true', need: [b]}\n");
  EXPECT_NE(n.find("steps.a.need: unknown field"), std::string::npos) << n;
}

TEST(Spec, ConditionsLoopsAndNestedPipelinesAreNotSupportedYetByName) {
  std::string e = error_of(kfp("        triggerPolicy: {condition: \"inputs.parameter_values['x'] == 'a'\"}"));
  EXPECT_NE(e.find("root.dag.tasks.b.triggerPolicy: conditions (dsl.If, dsl.Condition) are not supported yet"),
            std::string::npos)
      << e;
  e = error_of(kfp("        parameterIterator: {itemInput: x, items: {raw: '[1, 2]'}}"));
  EXPECT_NE(e.find("root.dag.tasks.b.parameterIterator: loops (dsl.ParallelFor) are not supported yet"), std::string::npos)
      << e;
  std::string nested = kfp("");
  nested.replace(nested.find("  comp-b:\n"), 10, "  comp-b:\n    dag: {tasks: {}}\n");
  e = error_of(nested);
  EXPECT_NE(e.find("nested DAGs"), std::string::npos) << e;
  EXPECT_NE(e.find("root.dag.tasks.b.componentRef"), std::string::npos) << e;
  e = error_of(kfp("", "[--executor_input, '{{$}}']"));
  EXPECT_NE(e.find("root.dag.tasks.b.command[2]: {{$}}: the executor input of KFP's Python components is not supported yet"),
            std::string::npos)
      << e;
}

TEST(Spec, OutputNamesThatWouldLeaveTheTasksDirectoryAreRefused) {
  const std::string e = error_of("name: x\nsteps:\n  a: {run: 'true', outputs: [../../etc]}\n");
  EXPECT_NE(e.find("steps.a: '../../etc' cannot name an output"), std::string::npos) << e;
  const std::string dup = error_of("name: x\nsteps:\n  a: {run: 'true'}\n  a: {run: 'false'}\n");
  EXPECT_NE(dup.find("a second task named 'a'"), std::string::npos) << dup;
}

TEST(Spec, NativePlaceholdersThatNameNothingAreRefused) {
  std::string e = error_of("name: x\nsteps:\n  a: {run: 'echo {{param.x}}'}\n");
  EXPECT_NE(e.find("steps.a.run[2]: {{param.x}} names nothing"), std::string::npos) << e;
  e = error_of("name: x\nsteps:\n  a: {run: 'echo {{outputs.model}}'}\n");
  EXPECT_NE(e.find("names no output artifact of task 'a'"), std::string::npos) << e;
  e = error_of("name: x\nsteps:\n  a: {run: 'echo {{steps.b.outputs.m}}'}\n");
  EXPECT_NE(e.find("no task 'b'"), std::string::npos) << e;
  e = error_of("name: x\nsteps:\n  a: {run: 'echo', env: {M: '{{outputs.model}}'}}\n");
  EXPECT_NE(e.find("steps.a.env.M: {{$.outputs.artifacts['model'].path}} names no output artifact of task 'a'"),
            std::string::npos) << e;
}

TEST(Placeholder, ResolvesEveryKindInsideLargerArguments) {
  Bindings b;
  b.input_parameters["lr"] = "0.1";
  b.input_artifacts["data"] = "/d/in";
  b.output_artifacts["model"] = "/d/out";
  b.output_parameters["loss"] = "/d/loss";
  EXPECT_EQ(resolve("--lr={{$.inputs.parameters['lr']}}", b), "--lr=0.1");
  EXPECT_EQ(resolve("{{$.inputs.artifacts['data'].path}}:{{$.inputs.artifacts['data'].uri}}", b), "/d/in:/d/in");
  EXPECT_EQ(resolve("{{$.outputs.artifacts['model'].path}} {{$.outputs.parameters['loss'].output_file}}", b),
            "/d/out /d/loss");
  EXPECT_EQ(resolve("awk '{print {{x}}}'", b), "awk '{print {{x}}}'");  // not a placeholder of KFP's
  EXPECT_THROW(resolve("{{$.inputs.parameters['other']}}", b), Error);
}

TEST(Digest, Sha256IsOpenSslsAndADirectoryDigestSeesRenames) {
  EXPECT_EQ(sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "a");
  std::ofstream(dir / "a" / "x") << "1";
  const std::string before = artifact_digest(dir / "a");
  EXPECT_EQ(artifact_digest(dir / "a"), before);
  std::filesystem::rename(dir / "a" / "x", dir / "a" / "y");
  EXPECT_NE(artifact_digest(dir / "a"), before);
  std::ofstream(dir / "f") << "abc";
  EXPECT_EQ(artifact_digest(dir / "f"), sha256("abc"));
}

}  // namespace
}  // namespace cohort::pipeline
