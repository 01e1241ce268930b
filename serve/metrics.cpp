#include "serve/metrics.hpp"

#include <algorithm>

#include <unistd.h>

#include <chrono>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace cohort::serve {
namespace {

// Seconds, from 100 µs to 10 s: a loopback request to a compute-bound batch.
const std::vector<double> kSeconds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                   0.01,   0.025,   0.05,   0.1,   1.0,    10.0};
// Rows of a model run: powers of two up to Triton's largest usual max_batch_size.
const std::vector<double> kRows{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

std::string number(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

std::string labels(const std::pair<std::string, std::int64_t>& key) {
  // Model names are object names (letters, digits, '.', '_', '-'): nothing to escape.
  return "model=\"" + key.first + "\",version=\"" + std::to_string(key.second) + "\"";
}

void family(std::ostringstream& out, const char* name, const char* type, const char* help) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

// utime + stime from /proc/self/stat, and the resident set from /proc/self/statm.
std::pair<double, double> process_usage() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string skip;
  double utime = 0, stime = 0;
  for (int i = 3; i < 14; ++i) fields >> skip;  // state … cmajflt: fields 3..13
  fields >> utime >> stime;
  std::ifstream statm("/proc/self/statm");
  double pages = 0, resident = 0;
  statm >> pages >> resident;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {(utime + stime) / ticks, resident * static_cast<double>(::sysconf(_SC_PAGESIZE))};
}

}  // namespace

void Metrics::Histogram::observe(double value, const std::vector<double>& bounds) {
  if (counts.empty()) counts.assign(bounds.size(), 0);
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) {
      ++counts[i];
      break;
    }
  }
  sum += value;
  ++count;
}

void Metrics::record(const std::string& model, std::int64_t version, const Request& r) {
  std::lock_guard lock(mutex_);
  Series& s = series_[{model, version}];
  s.last_inference_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
  s.executions += static_cast<std::uint64_t>(std::max(0, r.executions));
  if (r.batch_rows > 0) s.batch_size.observe(static_cast<double>(r.batch_rows), kRows);
  if (!r.success) {
    ++s.failure;
    s.failure_s += r.request_s;
    return;
  }
  ++s.success;
  s.inferences += static_cast<std::uint64_t>(r.batch);
  s.request.observe(r.request_s, kSeconds);
  s.compute.observe(r.compute_s, kSeconds);
  s.queue.observe(r.queue_s, kSeconds);
}

Metrics::Stats Metrics::stats(const std::string& model, std::int64_t version) const {
  std::lock_guard lock(mutex_);
  auto it = series_.find({model, version});
  if (it == series_.end()) return {};
  const Series& s = it->second;
  return {s.success, s.failure, s.inferences, s.executions, s.request.sum, s.failure_s, s.compute.sum,
          s.last_inference_ms};
}

std::string Metrics::text() const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, std::uint64_t Series::*field) {
    family(out, name, "counter", help);
    for (const auto& [key, s] : series_) out << name << "{" << labels(key) << "} " << s.*field << "\n";
  };
  counter("cohort_inference_request_success_total", "Inference requests that succeeded.", &Series::success);
  counter("cohort_inference_request_failure_total", "Inference requests that failed.", &Series::failure);
  counter("cohort_inference_count_total", "Inferences performed (a batch of 4 counts 4).", &Series::inferences);
  counter("cohort_inference_exec_count_total", "Model executions (batches) run.", &Series::executions);
  auto histogram = [&](const char* name, const char* help, Histogram Series::*field,
                       const std::vector<double>& bounds) {
    family(out, name, "histogram", help);
    for (const auto& [key, s] : series_) {
      const Histogram& h = s.*field;
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += h.counts.empty() ? 0 : h.counts[i];
        out << name << "_bucket{" << labels(key) << ",le=\"" << number(bounds[i]) << "\"} " << cumulative << "\n";
      }
      out << name << "_bucket{" << labels(key) << ",le=\"+Inf\"} " << h.count << "\n";
      out << name << "_sum{" << labels(key) << "} " << number(h.sum) << "\n";
      out << name << "_count{" << labels(key) << "} " << h.count << "\n";
    }
  };
  histogram("cohort_inference_request_duration_seconds", "Successful requests' time in the server.", &Series::request,
            kSeconds);
  histogram("cohort_inference_queue_duration_seconds", "Successful requests' wait in a batcher's queue.",
            &Series::queue, kSeconds);
  histogram("cohort_inference_compute_duration_seconds", "The model's time running each request.", &Series::compute,
            kSeconds);
  histogram("cohort_inference_batch_size", "Rows of each run of the model.", &Series::batch_size, kRows);
  const auto [cpu, rss] = process_usage();
  family(out, "process_cpu_seconds_total", "counter", "User and system CPU time of the server.");
  out << "process_cpu_seconds_total " << number(cpu) << "\n";
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory of the server.");
  out << "process_resident_memory_bytes " << number(rss) << "\n";
  return out.str();
}

}  // namespace cohort::serve
