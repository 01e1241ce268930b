// pipeline/lineage_record.hpp — a pipeline's tasks in the lineage store (lineage/record.hpp):
// the run as a Context "PipelineRun", each task as an Execution "PipelineTask" named
// "RUN/TASK", its input artifacts as INPUT events and its outputs as OUTPUT events, each
// event's path the input's or output's name. Input parameters are the execution's
// properties "input.NAME", output values "output.NAME". Never throws, never fails the task:
// a store that cannot be written costs one warning line (COHORT_LINEAGE=off records nothing).
#pragma once

#include "pipeline/run_dir.hpp"

namespace cohort::pipeline {

// The execution's name in the store, and what COHORT_LINEAGE_EXECUTION says for the task's
// command, so that what the command records itself (a checkpoint, a launch) hangs under it.
std::string lineage_execution(const RunRecord& record, const std::string& task);

// The task as it starts (RUNNING), with its inputs.
void record_task_start(const RunRecord& record, const Task& task, const ResolvedInputs& inputs);
// The task as it ended — COMPLETE, CACHED or FAILED — with its inputs and its outputs.
void record_task_end(const RunRecord& record, const Task& task, const ResolvedInputs& inputs, const TaskStatus& status);

}  // namespace cohort::pipeline
