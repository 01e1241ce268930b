#include "pipeline/lineage_record.hpp"

#include "lineage/record.hpp"

namespace cohort::pipeline {
namespace {

lineage::Context run_context(const RunRecord& rec) {
  return {.type = "PipelineRun",
          .name = rec.run,
          .properties = {{"pipeline", rec.pipeline.name}, {"source", rec.source}, {"mode", rec.mode},
                         {"dir", (rec.root / "runs" / rec.run).string()}}};
}

// The upstream artifacts the task read, typed as their producers declared them.
std::vector<std::pair<std::string, lineage::Artifact>> input_artifacts(const RunRecord& rec, const Task& task,
                                                                       const ResolvedInputs& in) {
  std::vector<std::pair<std::string, lineage::Artifact>> out;
  for (const auto& input : task.inputs) {
    if (!input.artifact) continue;
    const auto path = in.bindings.input_artifacts.find(input.name);
    if (path == in.bindings.input_artifacts.end()) continue;
    const Task* producer = rec.pipeline.task(input.source.task);
    out.push_back({input.name,
                   {.type = producer ? producer->artifact_type(input.source.output) : "Artifact",
                    .uri = path->second,
                    .name = input.source.output,
                    .digest = "sha256:" + in.artifact_digests.at(input.name)}});
  }
  return out;
}

lineage::Execution execution(const RunRecord& rec, const Task& task, const ResolvedInputs& in, const std::string& state) {
  lineage::Execution e{.type = "PipelineTask", .name = rec.run + "/" + task.name, .state = state};
  e.properties = {{"pipeline", rec.pipeline.name}, {"run", rec.run}, {"task", task.name},
                  {"fingerprint", in.fingerprint}};
  for (const auto& [name, value] : in.bindings.input_parameters) e.properties["input." + name] = value;
  return e;
}

}  // namespace

std::string lineage_execution(const RunRecord& record, const std::string& task) {
  return "PipelineTask/" + record.run + "/" + task;
}

void record_task_start(const RunRecord& rec, const Task& task, const ResolvedInputs& in) {
  lineage::record_execution({.execution = execution(rec, task, in, "RUNNING"),
                             .inputs = input_artifacts(rec, task, in),
                             .outputs = {},
                             .contexts = {run_context(rec)}});
}

void record_task_end(const RunRecord& rec, const Task& task, const ResolvedInputs& in, const TaskStatus& st) {
  const std::string state = st.state == "succeeded" ? "COMPLETE" : st.state == "cached" ? "CACHED" : "FAILED";
  lineage::ExecutionRecord r{.execution = execution(rec, task, in, state),
                             .inputs = input_artifacts(rec, task, in),
                             .outputs = {},
                             .contexts = {run_context(rec)}};
  if (!st.job.empty()) r.execution.properties["job_id"] = st.job;
  r.execution.properties["attempt"] = static_cast<std::int64_t>(st.attempt);
  if (!st.reason.empty()) r.execution.properties["reason"] = st.reason;
  for (const auto& [name, value] : st.outputs.parameters) r.execution.properties["output." + name] = value;
  for (const auto& [name, artifact] : st.outputs.artifacts) {
    r.outputs.push_back(
        {name, {.type = task.artifact_type(name), .uri = artifact.first, .name = name, .digest = "sha256:" + artifact.second}});
  }
  lineage::record_execution(r);
}

}  // namespace cohort::pipeline
