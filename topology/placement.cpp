// The placement planner: the whole algorithm lives in this file, in the order plan() runs
// it: GPU groups, ranks to NUMA domains, cores, threads, memory, NICs, reasons.
#include "topology/placement.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <tuple>

#include "common/error.hpp"

namespace cohort::topology {
namespace {

constexpr int kMaxRanks = 65536;
constexpr int kMaxThreads = 1024;

std::string plural(int n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string numa_name(int numa) { return numa >= 0 ? "NUMA " + std::to_string(numa) : "no NUMA node"; }

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int> all_gpu_indices(const Node& node) {
  std::vector<int> all(node.gpus().size());
  std::iota(all.begin(), all.end(), 0);
  return all;
}

// Splits `total` into parts proportional to `weights` by largest remainder. Equal
// remainders go to the part that comes first in `tie_order` (a permutation of the part
// indices; empty: index order), so the split is deterministic.
std::vector<int> proportional(int total, const std::vector<int>& weights, const std::vector<std::size_t>& tie_order = {}) {
  std::vector<int> parts(weights.size(), 0);
  long long sum = std::accumulate(weights.begin(), weights.end(), 0LL);
  if (sum == 0 || total == 0) return parts;
  std::vector<std::size_t> rank_in_ties(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i) rank_in_ties[tie_order.empty() ? i : tie_order[i]] = i;
  std::vector<std::pair<long long, std::size_t>> remainders;
  int given = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    long long exact = static_cast<long long>(total) * weights[i];
    parts[i] = static_cast<int>(exact / sum);
    given += parts[i];
    remainders.emplace_back(exact % sum, i);
  }
  std::sort(remainders.begin(), remainders.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return rank_in_ties[a.second] < rank_in_ties[b.second];
  });
  for (std::size_t i = 0; given < total; ++i, ++given) ++parts[remainders[i % remainders.size()].second];
  return parts;
}

// A NUMA domain as the planner sees it: its allowed cores and allowed GPUs.
struct Domain {
  int numa = -1;
  int package = -1;
  std::string name;           // "NUMA 1"; "NUMA 0,1" once it has taken in an idle neighbour
  std::vector<CpuSet> cores;  // allowed PUs of each allowed core, in core order
  std::vector<int> gpus;      // allowed GPUs local to this domain, ascending
  int pu_count() const {
    int n = 0;
    for (const auto& c : cores) n += c.count();
    return n;
  }
};

struct GpuGroup {
  std::vector<int> gpus;
  int domain = 0;      // index into the domains vector
  bool mixed = false;  // GPUs from more than one domain
};

struct RankState {
  RankPlacement placement;
  int domain = 0;        // where the rank's GPUs (or cores, CPU-only) are
  int core_domain = 0;   // where its cores come from
  int group = -1;
  int cores = 0;            // whole cores it got; 0 when it got single hardware threads
  int cores_in_domain = 0;  // allowed cores where its cores come from
  std::string core_pool;    // where its cores come from: "NUMA 0", "NUMA 0,1"
  std::string nic_link;     // its first NIC's link to its first GPU
};

class Planner {
 public:
  Planner(const Node& node, const PlanRequest& request) : node_(node), request_(request) {}

  std::vector<RankPlacement> run() {
    allowed_cpus_ = request_.allowed_cpus.value_or(
        node_.allowed_cpus().empty() ? node_.cpus() : node_.allowed_cpus());
    allowed_gpus_ = request_.allowed_gpus.value_or(all_gpu_indices(node_));
    std::sort(allowed_gpus_.begin(), allowed_gpus_.end());
    const int g = static_cast<int>(allowed_gpus_.size());
    per_rank_ = request_.gpus_per_rank.value_or(g == 0 ? 0 : std::max(1, g / request_.ranks));

    build_domains();
    ranks_.resize(static_cast<std::size_t>(request_.ranks));
    for (int r = 0; r < request_.ranks; ++r) ranks_[static_cast<std::size_t>(r)].placement.local_rank = r;
    if (per_rank_ > 0) {
      assign_gpus();
    } else {
      assign_domains_by_cores();
    }
    assign_cores();
    assign_threads_and_memory();
    assign_nics();
    write_reasons();

    std::vector<RankPlacement> out;
    out.reserve(ranks_.size());
    for (auto& r : ranks_) out.push_back(std::move(r.placement));
    return out;
  }

 private:
  void build_domains() {
    std::map<int, std::size_t> by_numa;
    for (const auto& numa : node_.numa_nodes()) {
      by_numa[numa.index] = domains_.size();
      Domain d;
      d.numa = numa.index;
      d.package = numa.package;
      d.name = numa_name(numa.index);
      domains_.push_back(std::move(d));
    }
    if (domains_.empty()) {
      domains_.push_back(Domain{});
      domains_.back().name = numa_name(-1);
      by_numa[-1] = 0;
    }
    for (const auto& core : node_.cores()) {
      CpuSet pus = core.pus & allowed_cpus_;
      if (pus.empty()) continue;
      auto it = by_numa.find(core.numa);
      domains_[it == by_numa.end() ? 0 : it->second].cores.push_back(std::move(pus));
    }
    // A GPU local to several NUMA nodes (hwloc placed it at package level) goes to the
    // one holding fewest GPUs so far, so that a package's GPUs spread over its domains.
    for (int gpu : allowed_gpus_) {
      const auto& numa = node_.gpus()[static_cast<std::size_t>(gpu)].locality.numa;
      std::optional<std::size_t> d;
      for (int n : numa) {
        auto it = by_numa.find(n);
        if (it == by_numa.end()) continue;
        if (!d || domains_[it->second].gpus.size() < domains_[*d].gpus.size()) d = it->second;
      }
      const bool below_no_package = node_.gpus()[static_cast<std::size_t>(gpu)].locality.package < 0;
      if (!d || (below_no_package && node_.packages().size() > 1)) unknown_locality_.insert(gpu);
      if (!d) d = most_cores_domain();
      domains_[*d].gpus.push_back(gpu);
      domain_of_gpu_[gpu] = static_cast<int>(*d);
    }
    // When ranks are fewer than domains, the first domain of each package comes before
    // the second of any: two ranks on a two-socket node get a socket each.
    std::map<int, int> seen_in_package;
    std::vector<std::tuple<int, int, std::size_t>> keys;
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      const int package = domains_[d].package >= 0 ? domains_[d].package : -1 - static_cast<int>(d);
      keys.emplace_back(seen_in_package[package]++, static_cast<int>(d), d);
    }
    std::sort(keys.begin(), keys.end());
    for (const auto& key : keys) spread_order_.push_back(std::get<2>(key));
  }

  std::size_t most_cores_domain() const {
    std::size_t best = 0;
    for (std::size_t i = 1; i < domains_.size(); ++i) {
      if (domains_[i].cores.size() > domains_[best].cores.size()) best = i;
    }
    return best;
  }

  // Takes `count` GPUs from `pool`, starting with its first and adding the nearest to it.
  std::vector<int> take_near(std::vector<int>& pool, int count) const {
    std::vector<int> group{pool.front()};
    pool.erase(pool.begin());
    const int seed = group.front();
    std::stable_sort(pool.begin(), pool.end(), [&](int a, int b) {
      return node_.gpu_to_gpu(seed, a) < node_.gpu_to_gpu(seed, b);
    });
    for (int i = 1; i < count && !pool.empty(); ++i) {
      group.push_back(pool.front());
      pool.erase(pool.begin());
    }
    std::sort(pool.begin(), pool.end());
    return group;
  }

  void assign_gpus() {
    const int ranks = request_.ranks;
    // Whole groups of one locality, domain by domain.
    std::vector<std::vector<GpuGroup>> local(domains_.size());
    std::vector<int> leftovers;
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      std::vector<int> pool = domains_[d].gpus;
      while (static_cast<int>(pool.size()) >= per_rank_) {
        local[d].push_back(GpuGroup{take_near(pool, per_rank_), static_cast<int>(d), false});
      }
      leftovers.insert(leftovers.end(), pool.begin(), pool.end());
    }
    std::vector<int> whole(domains_.size());
    for (std::size_t d = 0; d < domains_.size(); ++d) whole[d] = static_cast<int>(local[d].size());
    const int whole_total = std::accumulate(whole.begin(), whole.end(), 0);

    std::vector<GpuGroup> groups;
    if (ranks <= whole_total) {
      // Enough groups of one locality: use them in proportion to where they are.
      auto quota = proportional(ranks, whole, spread_order_);
      for (std::size_t d = 0; d < domains_.size(); ++d) {
        for (int i = 0; i < quota[d]; ++i) groups.push_back(local[d][static_cast<std::size_t>(i)]);
      }
    } else {
      for (auto& in_domain : local) groups.insert(groups.end(), in_domain.begin(), in_domain.end());
      // The rest mix localities; leftovers are in domain order, so a mixed group spans
      // as few domains as it can.
      for (std::size_t i = 0; i + static_cast<std::size_t>(per_rank_) <= leftovers.size() &&
                              static_cast<int>(groups.size()) < ranks;
           i += static_cast<std::size_t>(per_rank_)) {
        GpuGroup mixed;
        mixed.gpus.assign(leftovers.begin() + static_cast<std::ptrdiff_t>(i),
                          leftovers.begin() + static_cast<std::ptrdiff_t>(i) + per_rank_);
        mixed.domain = domain_of_gpu_.at(mixed.gpus.front());
        mixed.mixed = std::any_of(mixed.gpus.begin(), mixed.gpus.end(),
                                  [&](int gpu) { return domain_of_gpu_.at(gpu) != mixed.domain; });
        groups.push_back(std::move(mixed));
      }
    }

    // Ranks in group order; with more ranks than groups, neighbours share a group.
    const int group_count = static_cast<int>(groups.size());
    std::vector<int> ranks_per_group = proportional(ranks, std::vector<int>(groups.size(), 1));
    int rank = 0;
    for (int gi = 0; gi < group_count; ++gi) {
      for (int i = 0; i < ranks_per_group[static_cast<std::size_t>(gi)]; ++i, ++rank) {
        auto& r = ranks_[static_cast<std::size_t>(rank)];
        const auto& group = groups[static_cast<std::size_t>(gi)];
        r.group = gi;
        r.domain = group.domain;
        r.placement.gpus = group.gpus;
        if (group.mixed) {
          std::vector<int> numas;
          for (int gpu : group.gpus) numas.push_back(domains_[static_cast<std::size_t>(domain_of_gpu_.at(gpu))].numa);
          numas.erase(std::unique(numas.begin(), numas.end()), numas.end());
          r.placement.broken.push_back("one locality per rank: GPUs " + format_index_list(sorted(group.gpus)) +
                                       " sit on " + join_numa(numas) + " (the allowed GPUs do not divide by " +
                                       plural(per_rank_, "GPU", "GPUs") + " per NUMA node)");
        }
      }
    }
    if (ranks > group_count) {
      const int used = group_count * per_rank_;
      for (auto& r : ranks_) {
        r.placement.broken.push_back("exclusive GPUs: " + plural(ranks, "rank shares ", "ranks share ") +
                                     plural(used, "GPU", "GPUs") + " (" +
                                     plural(per_rank_, "GPU", "GPUs") + " per rank)");
      }
    }
  }

  static std::string join_numa(const std::vector<int>& numas) {
    std::string out = "NUMA ";
    for (std::size_t i = 0; i < numas.size(); ++i) {
      if (i) out += i + 1 == numas.size() ? " and " : ", ";
      out += std::to_string(numas[i]);
    }
    return out;
  }

  void assign_domains_by_cores() {
    std::vector<int> weights;
    for (const auto& d : domains_) weights.push_back(static_cast<int>(d.cores.size()));
    auto quota = proportional(request_.ranks, weights, spread_order_);
    int rank = 0;
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      for (int i = 0; i < quota[d]; ++i, ++rank) ranks_[static_cast<std::size_t>(rank)].domain = static_cast<int>(d);
    }
  }

  // A domain holding ranks but no allowed cores lends its ranks to the nearest domain
  // that has some: same package first, then one without ranks of its own, then the one
  // with the most cores.
  int core_donor(int domain, const std::vector<int>& ranks_in) const {
    int best = -1;
    auto score = [&](int d) {
      const auto& dom = domains_[static_cast<std::size_t>(d)];
      int same_package = dom.package >= 0 && dom.package == domains_[static_cast<std::size_t>(domain)].package;
      return std::make_tuple(same_package, ranks_in[static_cast<std::size_t>(d)] == 0,
                             static_cast<int>(dom.cores.size()), -d);
    };
    for (int d = 0; d < static_cast<int>(domains_.size()); ++d) {
      if (domains_[static_cast<std::size_t>(d)].cores.empty()) continue;
      if (best < 0 || score(d) > score(best)) best = d;
    }
    return best;
  }

  void assign_cores() {
    std::vector<int> ranks_in(domains_.size(), 0);
    for (const auto& r : ranks_) ++ranks_in[static_cast<std::size_t>(r.domain)];
    std::vector<Domain> pools = domains_;
    if (per_rank_ == 0) adopt_idle_domains(ranks_in, pools);
    std::vector<std::vector<std::size_t>> members(domains_.size());
    for (std::size_t i = 0; i < ranks_.size(); ++i) {
      auto& r = ranks_[i];
      r.core_domain = r.domain;
      if (domains_[static_cast<std::size_t>(r.domain)].cores.empty()) {
        r.core_domain = core_donor(r.domain, ranks_in);
        r.placement.broken.push_back("cores local to GPUs: the allowed CPUs have none on " +
                                     domains_[static_cast<std::size_t>(r.domain)].name + "; cores come from " +
                                     domains_[static_cast<std::size_t>(r.core_domain)].name);
      }
      members[static_cast<std::size_t>(r.core_domain)].push_back(i);
    }
    for (std::size_t d = 0; d < domains_.size(); ++d) {
      if (!members[d].empty()) split_cores(pools[d], members[d]);
    }
  }

  // CPU-only ranks fewer than the domains would leave whole domains idle: each idle
  // domain's cores join the ranks of a domain in the same package (else the most crowded
  // one), at the price of those ranks spanning two NUMA nodes.
  void adopt_idle_domains(const std::vector<int>& ranks_in, std::vector<Domain>& pools) const {
    for (std::size_t idle = 0; idle < domains_.size(); ++idle) {
      if (ranks_in[idle] > 0 || domains_[idle].cores.empty()) continue;
      std::optional<std::size_t> host;
      auto score = [&](std::size_t d) {
        bool same_package = domains_[d].package >= 0 && domains_[d].package == domains_[idle].package;
        // Cross-multiplied cores per rank: fewer is more crowded, and crowded comes first.
        return std::make_tuple(same_package, -static_cast<long long>(domains_[d].cores.size()) * 1024 / ranks_in[d]);
      };
      for (std::size_t d = 0; d < domains_.size(); ++d) {
        if (ranks_in[d] == 0 || domains_[d].cores.empty()) continue;
        if (!host || score(d) > score(*host)) host = d;
      }
      if (!host) continue;
      Domain& pool = pools[*host];
      pool.cores.insert(pool.cores.end(), domains_[idle].cores.begin(), domains_[idle].cores.end());
      pool.name += "," + std::to_string(domains_[idle].numa);
    }
  }

  void split_cores(const Domain& domain, const std::vector<std::size_t>& members) {
    const int n = static_cast<int>(members.size());
    const int cores = static_cast<int>(domain.cores.size());
    const int pus = domain.pu_count();
    const std::string& where = domain.name;
    if (n <= cores) {
      // Contiguous blocks of whole cores; the first ranks take one more when it does not divide.
      int next = 0;
      for (int i = 0; i < n; ++i) {
        int take = cores / n + (i < cores % n ? 1 : 0);
        auto& r = ranks_[members[static_cast<std::size_t>(i)]];
        for (int c = 0; c < take; ++c) r.placement.cpus |= domain.cores[static_cast<std::size_t>(next++)];
        r.cores = take;
        r.cores_in_domain = cores;
        r.core_pool = where;
      }
      return;
    }
    std::vector<int> order;  // PUs core by core, so blocks keep whole cores where they can
    for (const auto& core : domain.cores) {
      for (int pu : core.cpus()) order.push_back(pu);
    }
    if (n <= pus) {
      int next = 0;
      for (int i = 0; i < n; ++i) {
        int take = pus / n + (i < pus % n ? 1 : 0);
        auto& r = ranks_[members[static_cast<std::size_t>(i)]];
        for (int c = 0; c < take; ++c) r.placement.cpus.insert(order[static_cast<std::size_t>(next++)]);
        r.cores = 0;
        r.cores_in_domain = cores;
        r.core_pool = where;
        bool whole = std::all_of(domain.cores.begin(), domain.cores.end(), [&](const CpuSet& core) {
          return !core.intersects(r.placement.cpus) || core.is_subset_of(r.placement.cpus);
        });
        if (!whole) {
          r.placement.broken.push_back("whole cores: " + plural(n, "rank", "ranks") + " on " +
                                       plural(cores, "core", "cores") + " of " + where +
                                       " share cores as SMT siblings");
        }
      }
      return;
    }
    for (int i = 0; i < n; ++i) {
      auto& r = ranks_[members[static_cast<std::size_t>(i)]];
      r.placement.cpus.insert(order[static_cast<std::size_t>(i % pus)]);
      r.cores = 0;
      r.cores_in_domain = cores;
      r.core_pool = where;
      r.placement.broken.push_back("disjoint cpusets: " + plural(n, "rank shares ", "ranks share ") +
                                   plural(pus, "CPU", "CPUs") + " of " + where);
    }
  }

  void assign_threads_and_memory() {
    for (auto& r : ranks_) {
      auto& p = r.placement;
      int cores = 0;
      for (const auto& core : node_.cores()) cores += core.pus.intersects(p.cpus);
      const int cpus = p.cpus.count();
      p.threads = request_.threads_per_rank > 0 ? request_.threads_per_rank : (request_.smt ? cpus : cores);
      if (p.threads > cpus) {
        p.broken.push_back("threads: " + plural(p.threads, "thread", "threads") + " on " +
                           plural(cpus, "CPU", "CPUs") + " oversubscribe them");
      }
      for (const auto& numa : node_.numa_nodes()) {
        if (numa.cpus.intersects(p.cpus)) p.numa.push_back(numa.index);
      }
    }
  }

  // Locality of a CPU-only rank to a NIC: same NUMA node, same package, elsewhere.
  int cpu_distance(const RankPlacement& p, const Nic& nic) const {
    for (int n : nic.locality.numa) {
      if (std::find(p.numa.begin(), p.numa.end(), n) != p.numa.end()) return 0;
    }
    if (nic.locality.package >= 0) {
      for (int n : p.numa) {
        const NumaNode* numa = node_.find_numa(n);
        if (numa && numa->package == nic.locality.package) return 1;
      }
    }
    return 2;
  }

  void assign_nics() {
    const auto& nics = node_.nics();
    std::vector<int> candidates;
    bool have_fabric = std::any_of(nics.begin(), nics.end(), [](const Nic& n) { return n.kind != NicKind::ethernet; });
    for (int i = 0; i < static_cast<int>(nics.size()); ++i) {
      if (!have_fabric || nics[static_cast<std::size_t>(i)].kind != NicKind::ethernet) candidates.push_back(i);
    }
    if (candidates.empty()) return;

    // How many times each set of equally near NICs has been handed out, so that ties
    // rotate through their members rank after rank.
    std::map<std::vector<int>, int> handed_out;
    auto pick = [&](const std::vector<int>& tied) {
      int& count = handed_out[tied];
      return tied[static_cast<std::size_t>(count++) % tied.size()];
    };

    for (auto& r : ranks_) {
      auto& p = r.placement;
      // Distance of each candidate to this rank, as a comparable key.
      std::map<int, std::pair<int, Link>> key;
      std::vector<int> chosen;
      if (!p.gpus.empty()) {
        for (int gpu : p.gpus) {
          Link best{LinkClass::sys, 0};
          bool first = true;
          for (int nic : candidates) {
            Link l = node_.gpu_to_nic(gpu, nic);
            if (first || l < best) best = l;
            first = false;
          }
          std::vector<int> tied;
          for (int nic : candidates) {
            if (node_.gpu_to_nic(gpu, nic) == best) tied.push_back(nic);
          }
          int nic = pick(tied);
          if (std::find(chosen.begin(), chosen.end(), nic) == chosen.end()) chosen.push_back(nic);
        }
        for (int nic : candidates) {
          Link best = node_.gpu_to_nic(p.gpus.front(), nic);
          for (int gpu : p.gpus) best = std::min(best, node_.gpu_to_nic(gpu, nic));
          key[nic] = {static_cast<int>(best.cls), best};
        }
      } else {
        int best = 3;
        for (int nic : candidates) best = std::min(best, cpu_distance(p, nics[static_cast<std::size_t>(nic)]));
        std::vector<int> tied;
        for (int nic : candidates) {
          if (cpu_distance(p, nics[static_cast<std::size_t>(nic)]) == best) tied.push_back(nic);
        }
        chosen.push_back(pick(tied));
        for (int nic : candidates) key[nic] = {cpu_distance(p, nics[static_cast<std::size_t>(nic)]), Link{}};
      }
      std::vector<int> order = chosen;
      if (request_.nics == NicPolicy::all) {
        std::vector<int> rest;
        for (int nic : candidates) {
          if (std::find(chosen.begin(), chosen.end(), nic) == chosen.end()) rest.push_back(nic);
        }
        std::stable_sort(rest.begin(), rest.end(), [&](int a, int b) {
          if (key[a].first != key[b].first) return key[a].first < key[b].first;
          return key[a].second < key[b].second;
        });
        order.insert(order.end(), rest.begin(), rest.end());
      }
      for (int nic : order) p.nics.push_back(nics[static_cast<std::size_t>(nic)].name);
      r.nic_link = p.gpus.empty() ? "" : node_.gpu_to_nic(p.gpus.front(), chosen.front()).to_string();
    }
  }

  void write_reasons() {
    for (auto& r : ranks_) {
      auto& p = r.placement;
      const Domain& home = domains_[static_cast<std::size_t>(r.domain)];
      std::string reason;
      if (p.gpus.empty()) {
        reason = "CPU-only on " + numa_name(home.numa);
      } else {
        reason = (p.gpus.size() == 1 ? "GPU " : "GPUs ") + format_index_list(sorted(p.gpus)) + " on " +
                 numa_name(home.numa);
        if (p.gpus.size() > 1) {
          Link worst{LinkClass::self, 0};
          for (int a : p.gpus) {
            for (int b : p.gpus) worst = std::max(worst, node_.gpu_to_gpu(a, b));
          }
          reason += " (linked " + worst.to_string() + ")";
        }
        for (int gpu : p.gpus) {
          if (unknown_locality_.count(gpu)) {
            reason += ", GPU " + std::to_string(gpu) + " locality unknown";
            break;
          }
        }
      }
      if (!p.nics.empty()) {
        reason += "; NIC " + p.nics.front();
        if (!r.nic_link.empty()) reason += " " + r.nic_link + " to GPU " + std::to_string(p.gpus.front());
      }
      const std::string& cores_from = r.core_pool;
      if (r.cores > 0) {
        reason += "; " + std::to_string(r.cores) + " of the " + std::to_string(r.cores_in_domain) +
                  " allowed cores on " + cores_from;
      } else {
        reason += "; " + plural(p.cpus.count(), "CPU", "CPUs") + " of the " + std::to_string(r.cores_in_domain) +
                  " allowed cores on " + cores_from;
      }
      p.reason = std::move(reason);
    }
  }

  const Node& node_;
  const PlanRequest& request_;
  CpuSet allowed_cpus_;
  std::vector<int> allowed_gpus_;
  int per_rank_ = 0;
  std::vector<Domain> domains_;
  std::vector<std::size_t> spread_order_;  // domains, first of each package first
  std::map<int, int> domain_of_gpu_;
  std::set<int> unknown_locality_;
  std::vector<RankState> ranks_;
};

}  // namespace

void check_request(const Node& node, const PlanRequest& request, const RequestNames& names) {
  if (request.ranks < 1 || request.ranks > kMaxRanks) {
    throw input_error(names.ranks + " " + std::to_string(request.ranks) + ": must be 1.." +
                      std::to_string(kMaxRanks));
  }
  if (request.threads_per_rank < 0 || request.threads_per_rank > kMaxThreads) {
    throw input_error(names.threads_per_rank + " " + std::to_string(request.threads_per_rank) +
                      ": must be 1.." + std::to_string(kMaxThreads) + " (or 0 for one per core)");
  }
  if (request.allowed_cpus) {
    const CpuSet& cpus = *request.allowed_cpus;
    const std::string what = names.cpus + " " + cpus.to_string();
    if (cpus.empty()) throw input_error(names.cpus + ": no CPUs (give a list like 0-3,8)");
    CpuSet outside = cpus - node.cpus();
    if (!outside.empty()) {
      throw input_error(what + ": " + (outside.count() == 1 ? "CPU " : "CPUs ") + outside.to_string() +
                        (outside.count() == 1 ? " is" : " are") + " not on this node (it has CPUs " +
                        node.cpus().to_string() + ")");
    }
  }
  const int node_gpus = static_cast<int>(node.gpus().size());
  const std::string node_has =
      node_gpus == 0 ? "it has no GPUs" : "it has GPUs " + format_index_list(all_gpu_indices(node));
  int allowed = node_gpus;
  if (request.allowed_gpus) {
    std::vector<int> gpus = *request.allowed_gpus;
    std::sort(gpus.begin(), gpus.end());
    const std::string what = names.gpus + " " + format_index_list(gpus);
    if (std::adjacent_find(gpus.begin(), gpus.end()) != gpus.end()) {
      throw input_error(what + ": lists a GPU twice");
    }
    std::vector<int> outside;
    for (int gpu : gpus) {
      if (gpu < 0 || gpu >= node_gpus) outside.push_back(gpu);
    }
    if (!outside.empty()) {
      throw input_error(what + ": " + (outside.size() == 1 ? "GPU " : "GPUs ") + format_index_list(outside) +
                        (outside.size() == 1 ? " is" : " are") + " not on this node (" + node_has + ")");
    }
    allowed = static_cast<int>(gpus.size());
  }
  if (request.gpus_per_rank) {
    const int k = *request.gpus_per_rank;
    const std::string what = names.gpus_per_rank + " " + std::to_string(k);
    if (k < 0) throw input_error(what + ": must be 0 or more");
    if (k > allowed) {
      if (node_gpus == 0) throw input_error(what + ": this node has no GPUs (use 0, or leave it out)");
      if (allowed == 0) throw input_error(what + ": " + names.gpus + " allows no GPUs (use 0, or list GPUs)");
      throw input_error(what + ": only " + plural(allowed, "GPU is", "GPUs are") + " allowed" +
                        (request.allowed_gpus ? " (" + names.gpus + " " +
                                                    format_index_list(sorted(*request.allowed_gpus)) + ")"
                                              : " (" + node_has + ")"));
    }
  }
}

std::vector<RankPlacement> plan(const Node& node, const PlanRequest& request) {
  check_request(node, request, RequestNames{});
  return Planner(node, request).run();
}

}  // namespace cohort::topology
