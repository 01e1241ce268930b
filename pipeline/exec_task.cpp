// The in-job wrapper: one task, from its inputs to its recorded outputs.
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "pipeline/digest.hpp"
#include "lineage/record.hpp"
#include "pipeline/lineage_record.hpp"
#include "pipeline/run.hpp"
#include "pipeline/run_dir.hpp"

namespace cohort::pipeline {
namespace {

// Output places, emptied of what an earlier attempt left.
void prepare_outputs(const fs::path& tdir, const Task& t, Bindings& b) {
  std::error_code ec;
  for (const char* sub : {"artifacts", "parameters"}) {
    fs::remove_all(tdir / sub, ec);
    make_directories((tdir / sub).string(), 0755);
  }
  for (const auto& a : t.output_artifacts) b.output_artifacts[a] = (tdir / "artifacts" / a).string();
  for (const auto& p : t.output_parameters) b.output_parameters[p] = (tdir / "parameters" / p).string();
}

// The declared outputs, read and hashed; the first missing one is named in the error.
Outputs collect_outputs(const Bindings& b) {
  Outputs out;
  std::error_code ec;
  for (const auto& [name, path] : b.output_artifacts) {
    if (!fs::exists(path, ec)) {
      throw Error("declared output artifact '" + name + "' was not written at " + path);
    }
    out.artifacts[name] = {path, artifact_digest(path)};
  }
  for (const auto& [name, path] : b.output_parameters) {
    if (!fs::exists(path, ec)) throw Error("declared output parameter '" + name + "' was not written to " + path);
    std::string value = read_text(path);
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    out.parameters[name] = value;
  }
  return out;
}

std::vector<std::string> command_line(const RunRecord& rec, const Task& t, const Bindings& b) {
  std::vector<std::string> argv;
  for (const auto& c : t.command) argv.push_back(resolve(c, b));
  if (argv[0] == "cohort") {  // cohort's own step kinds run the cohort that runs the pipeline
    argv[0] = own_executable().string();
  }
  if (rec.container == "pyxis" && !t.image.empty()) {
    argv.insert(argv.begin(), {"srun", "--ntasks=1", "--container-image=" + t.image,
                               "--container-mounts=" + rec.root.string() + ":" + rec.root.string()});
  }
  return argv;
}

// Runs the command; empty when it succeeded, otherwise why not.
std::string run_command(const fs::path& dir, const RunRecord& rec, const Task& t, const Bindings& b,
                        const std::vector<std::string>& argv) {
  std::vector<std::string> env{"COHORT_PIPELINE_RUN=" + dir.string(), "COHORT_PIPELINE_TASK=" + t.name,
                               std::string(lineage::kExecutionVariable) + "=" + lineage_execution(rec, t.name)};
  for (const auto& [k, v] : t.env) env.push_back(k + "=" + resolve(v, b));
  SpawnOptions o;
  o.environment = environment_with(env);
  // The command stays in the wrapper's process group, so that whoever stops the wrapper
  // (the local runner signals its group; Slurm its whole job) stops the command too.
  try {
    Process child = spawn(argv, o);
    const int status = child.wait();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    return "killed by signal " + std::to_string(WTERMSIG(status));
  } catch (const Error& e) {
    return e.what();
  }
}

// Slurm runs the job again, with SLURM_RESTART_COUNT one higher; this attempt ends when
// Slurm stops it, so that its end is not taken for the job's.
int requeue_self(const std::string& job) {
  const auto r = run_process({"scontrol", "requeue", job});
  if (!r.ok()) {
    std::cerr << "cohort: pipeline: scontrol requeue " << job << " failed: " << r.err
              << " (the cluster must allow requeue: JobRequeue=1)\n";
    return 1;
  }
  for (int i = 0; i < 300; ++i) ::sleep(1);
  return 1;
}

}  // namespace

int exec_task(const fs::path& dir, const std::string& name, int attempt) {
  const RunRecord rec = read_record(dir);
  const Task* t = rec.pipeline.task(name);
  if (!t) throw input_error(dir.string() + ": run " + rec.run + " has no task '" + name + "'");
  const bool slurm = rec.mode == "slurm";
  TaskStatus st;
  st.name = name;
  st.job = env_or("SLURM_JOB_ID");
  if (slurm) attempt = static_cast<int>(parse_integer(env_or("SLURM_RESTART_COUNT", "0"), 0, 1000000).value_or(0));
  st.attempt = attempt;
  st.log = log_path(dir, name).string();
  std::cerr << "cohort pipeline: task " << name << ", attempt " << attempt + 1 << " of " << t->max_retries + 1 << " on "
            << host_name() << "\n";
  const auto in = resolve_inputs(dir, rec, *t);
  if (!in) {
    st.state = "failed";
    st.reason = "an upstream task has no outputs";
    write_task_state(dir, st);
    return 1;
  }
  st.fingerprint = in->fingerprint;
  if (t->cache) {
    if (const auto hit = cache_lookup(rec.root, in->fingerprint)) {
      st.state = "cached";
      st.outputs = hit->outputs;
      st.reason = "from " + hit->from;
      st.started = st.ended = now_seconds();
      write_task_state(dir, st);
      record_task_end(rec, *t, *in, st);
      std::cerr << "cohort pipeline: task " << name << ": served from the cache (" << hit->from << ")\n";
      return 0;
    }
  }
  st.state = "running";
  st.started = now_seconds();
  write_task_state(dir, st);
  record_task_start(rec, *t, *in);
  Bindings b = in->bindings;
  prepare_outputs(task_dir(dir, name), *t, b);
  std::string failure = run_command(dir, rec, *t, b, command_line(rec, *t, b));
  if (failure.empty()) {
    try {
      st.outputs = collect_outputs(b);
    } catch (const Error& e) {
      failure = e.what();
    }
  }
  st.ended = now_seconds();
  if (failure.empty()) {
    st.state = "succeeded";
    write_task_state(dir, st);
    record_task_end(rec, *t, *in, st);
    if (t->cache) cache_store(rec.root, in->fingerprint, st.outputs, rec.run + "/" + name);
    return 0;
  }
  st.reason = failure;
  st.state = attempt < t->max_retries ? "retrying" : "failed";
  write_task_state(dir, st);
  if (st.state == "failed") record_task_end(rec, *t, *in, st);
  std::cerr << "cohort pipeline: task " << name << " failed: " << failure << "; its log: " << st.log << "\n";
  if (slurm && attempt < t->max_retries && !st.job.empty()) return requeue_self(st.job);
  return 1;
}

}  // namespace cohort::pipeline
