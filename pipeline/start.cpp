// Starting a run: its directory, the tasks the cache serves at once, and the others as
// sbatch jobs chained by afterok.
#include <ctime>
#include <set>

#include "common/environment.hpp"
#include "common/error.hpp"
#include "common/fd.hpp"
#include "common/process.hpp"
#include "common/text.hpp"
#include "pipeline/run.hpp"
#include "pipeline/run_dir.hpp"

namespace cohort::pipeline {
namespace {

std::string run_name(const std::string& pipeline) {
  char stamp[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return pipeline + "-" + stamp + "-" + lower(unguessable_name(4));
}

// pyxis adds --container-image to srun; without it an image can only be recorded.
std::string container_plugin(const Pipeline& p) {
  bool images = false;
  for (const auto& t : p.tasks) images = images || !t.image.empty();
  if (!images) return "";
  const auto r = run_process({"srun", "--help"});
  return r.out.find("--container-image") != std::string::npos ? "pyxis" : "";
}

// Every task whose inputs are known now and whose fingerprint the cache holds, in order, so
// that a task after a cached one can be served too. Returns the tasks served.
std::set<std::string> serve_from_cache(const fs::path& dir, const RunRecord& rec) {
  std::map<std::string, TaskStatus> served;
  for (const auto& t : rec.pipeline.tasks) {
    if (!t.cache) continue;
    bool ready = true;
    for (const auto& a : t.after) ready = ready && served.count(a) > 0;
    if (!ready) continue;
    const auto in = resolve_inputs(dir, rec, t, served);
    if (!in) continue;
    const auto hit = cache_lookup(rec.root, in->fingerprint);
    if (!hit) continue;
    TaskStatus st;
    st.name = t.name;
    st.state = "cached";
    st.fingerprint = in->fingerprint;
    st.outputs = hit->outputs;
    st.reason = "from " + hit->from;
    st.started = st.ended = now_seconds();
    // Not recorded in the lineage store: its outputs' history is the run that made them,
    // and one record a task (a store opened each time) would cost a cached rerun of 50
    // tasks most of a second.
    served[t.name] = std::move(st);
  }
  if (!served.empty()) write_served(dir, served);
  std::set<std::string> names;
  for (const auto& [name, _] : served) names.insert(name);
  return names;
}

std::vector<std::string> sbatch_argv(const fs::path& dir, const RunRecord& rec, const Task& t, const std::string& deps,
                                     const StartOptions& o) {
  std::vector<std::string> argv{"sbatch", "--parsable", "--job-name=" + rec.pipeline.name + "." + t.name,
                                "--output=" + log_path(dir, t.name).string(), "--open-mode=append"};
  if (!deps.empty()) {
    argv.push_back("--dependency=afterok" + deps);
    argv.push_back("--kill-on-invalid-dep=yes");
  }
  argv.push_back(t.max_retries > 0 ? "--requeue" : "--no-requeue");
  const Resources& r = t.resources;
  if (r.nodes) argv.push_back("--nodes=" + std::to_string(r.nodes));
  if (r.ntasks) argv.push_back("--ntasks=" + std::to_string(r.ntasks));
  if (r.cpus) argv.push_back("--cpus-per-task=" + std::to_string(r.cpus));
  if (r.gpus) argv.push_back("--gpus=" + std::to_string(r.gpus));
  if (!r.mem.empty()) argv.push_back("--mem=" + r.mem);
  if (!r.time.empty()) argv.push_back("--time=" + r.time);
  if (!r.partition.empty()) argv.push_back("--partition=" + r.partition);
  argv.insert(argv.end(), o.sbatch.begin(), o.sbatch.end());
  argv.push_back("--wrap=exec " + shell_quote(o.cohort) + " pipeline exec-task " + shell_quote(dir.string()) + " " +
                 shell_quote(t.name));
  return argv;
}

// Submits every task not served, upstream first; one that sbatch refuses cancels those
// submitted before it, so that a run is submitted whole or not at all.
std::map<std::string, std::string> submit(const fs::path& dir, const RunRecord& rec, const std::set<std::string>& served,
                                          const StartOptions& o) {
  std::map<std::string, std::string> jobs;
  try {
    for (const auto& t : rec.pipeline.tasks) {
      if (served.count(t.name)) continue;
      std::string deps;
      for (const auto& a : t.after) {
        if (jobs.count(a)) deps += ":" + jobs[a];
      }
      make_directories(task_dir(dir, t.name).string(), 0755);
      const auto r = run_process(sbatch_argv(dir, rec, t, deps, o));
      if (!r.ok()) throw Error("sbatch refused task " + t.name + ": " + (r.err.empty() ? r.out : r.err));
      jobs[t.name] = r.out.substr(0, r.out.find_first_of(";\n"));
    }
  } catch (...) {
    std::vector<std::string> cancel{"scancel"};
    for (const auto& [_, j] : jobs) cancel.push_back(j);
    if (cancel.size() > 1) run_process(cancel);
    write_file_atomically(dir / "cancelled", "submission failed\n");
    throw;
  }
  return jobs;
}

}  // namespace

fs::path pipeline_root(const std::string& given) {
  if (!given.empty()) return fs::absolute(given);
  const std::string env = env_or("COHORT_PIPELINE_DIR");
  if (!env.empty()) return fs::absolute(env);
  const std::string home = env_or("HOME");
  if (home.empty()) throw input_error("give --dir (or set COHORT_PIPELINE_DIR): HOME is not set");
  return fs::path(home) / ".cohort" / "pipelines";
}

Started start_run(const Pipeline& pipeline, const std::string& source, const StartOptions& o) {
  RunRecord rec;
  rec.parameters = parameter_values(pipeline, o.parameters);  // before anything is created
  if (!o.local && !find_program("sbatch")) {
    throw input_error("no Slurm here (sbatch is not on PATH): run it where jobs are submitted, or add --local");
  }
  rec.pipeline = pipeline;
  rec.run = run_name(pipeline.name);
  rec.source = source;
  rec.mode = o.local ? "local" : "slurm";
  rec.root = o.root;
  rec.created = now_seconds();
  rec.container = o.local ? "" : container_plugin(pipeline);
  std::set<std::string> images;
  for (const auto& t : pipeline.tasks) {
    if (!t.image.empty()) images.insert(t.image);
  }
  if (!images.empty() && rec.container.empty()) {
    rec.pipeline.notes.push_back("images (" + join(std::vector<std::string>(images.begin(), images.end()), ", ") +
                                 ") recorded and not used: " +
                                 (o.local ? "--local runs commands on this machine" : "the cluster has no container plugin (pyxis)") +
                                 "; each command runs on its node as it is");
  }
  const fs::path dir = o.root / "runs" / rec.run;
  make_directories((dir / "tasks").string(), 0755);
  write_record(dir, rec);
  Started s{dir, rec.run, 0, 0};
  const auto served = serve_from_cache(dir, rec);
  s.cached = static_cast<int>(served.size());
  if (o.local) return s;
  const auto jobs = submit(dir, rec, served, o);
  write_jobs(dir, jobs);
  s.submitted = static_cast<int>(jobs.size());
  return s;
}

}  // namespace cohort::pipeline
