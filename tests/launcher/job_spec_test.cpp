#include "launcher/job_spec.hpp"

#include <gtest/gtest.h>

#include <cstdio>

#include "common/error.hpp"
#include "common/json.hpp"

namespace cohort::launcher {
namespace {

constexpr const char* kTfJob = R"(
apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: mnist}
spec:
  runPolicy: {backoffLimit: "2", activeDeadlineSeconds: 600}
  tfReplicaSpecs:
    Worker:
      replicas: 2
      restartPolicy: ExitCode
      template:
        spec:
          containers:
          - name: tensorflow
            command: [python3, train.py]
            args: [--epochs, "3"]
            resources: {limits: {cpu: 4, memory: 8Gi, nvidia.com/gpu: 1}}
    PS: {replicas: 1, command: [python3, ps.py]}
    Chief: {replicas: 1, command: [python3, train.py]}
    Evaluator: {replicas: 1, command: [python3, eval.py]}
)";

std::string error_of(const std::string& yaml) {
  try {
    parse_job_spec(yaml, "job.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "accepted";
}

TEST(JobSpec, ReadsKubeflowTfJobWithRolesInLaunchOrder) {
  JobSpec spec = parse_job_spec(kTfJob, "job.yaml");
  EXPECT_EQ(spec.name, "mnist");
  EXPECT_EQ(spec.kind, JobKind::tensorflow);
  ASSERT_EQ(spec.roles.size(), 4u);
  EXPECT_EQ(spec.roles[0].name, "chief");
  EXPECT_EQ(spec.roles[1].name, "ps");
  EXPECT_EQ(spec.roles[2].name, "worker");
  EXPECT_EQ(spec.roles[3].name, "evaluator");
  EXPECT_EQ(spec.backoff_limit, 2);
  EXPECT_EQ(spec.active_deadline_seconds, 600);
  const Role& worker = spec.roles[2];
  EXPECT_EQ(worker.replicas, 2);
  EXPECT_EQ(worker.command, (std::vector<std::string>{"python3", "train.py", "--epochs", "3"}));
  EXPECT_EQ(worker.resources.cpus, 4);
  EXPECT_EQ(worker.resources.gpus, 1);
  EXPECT_EQ(worker.resources.memory, "8G");
  EXPECT_EQ(worker.restart_policy, RestartPolicy::exit_code);
  EXPECT_EQ(spec.world_size(), 5);
  EXPECT_EQ(spec.offset_of("worker"), 2);
}

TEST(JobSpec, MpiJobWorkersHaveNoCommandOfTheirOwn) {
  JobSpec spec = parse_job_spec(R"(
kind: MPIJob
spec:
  mpiReplicaSpecs:
    Launcher: {replicas: 1, command: [mpirun, -n, "4", ./app]}
    Worker: {replicas: 4, resources: {nodes: 2}}
)", "mpi.yaml");
  EXPECT_EQ(spec.world_size(), 1);
  EXPECT_EQ(spec.roles[1].replicas, 4);
  EXPECT_NE(error_of("kind: MPIJob\nspec:\n  mpiReplicaSpecs:\n    Launcher: {command: [a]}\n    Worker: {command: [b]}\n")
                .find("started by the launcher's mpirun"),
            std::string::npos);
}

TEST(JobSpec, ErrorsNameTheFileAndTheField) {
  EXPECT_EQ(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {replicas: 0, command: [a]}\n"),
            "job.yaml: spec.tfReplicaSpecs.Worker.replicas: must be at least 1 (got 0)");
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {replica: 2, command: [a]}\n")
                .find("spec.tfReplicaSpecs.Worker.replica: unknown field"),
            std::string::npos);
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {replicas: 1}\n").find("no command"),
            std::string::npos);
  EXPECT_NE(error_of("kind: PyTorchJob\nspec:\n  pytorchReplicaSpecs:\n    Master: {replicas: 2, command: [a]}\n")
                .find("exactly 1 replica"),
            std::string::npos);
  EXPECT_NE(error_of("kind: PyTorchJob\nspec:\n  pytorchReplicaSpecs:\n    Chief: {command: [a]}\n")
                .find("not a role of a PyTorchJob"),
            std::string::npos);
  EXPECT_NE(error_of("kind: JAXJob\nspec: {}\n").find("kind: 'JAXJob' is not a job kind"), std::string::npos);
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {replicas: 1, resources: {nodes: 2}, command: [a]}\n")
                .find("would leave nodes empty"),
            std::string::npos);
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {command: [a], resources: {memory: lots}}\n")
                .find("'lots' is not a memory size"),
            std::string::npos);
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs: [1, 2\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of("kind: TFJob\nsepc: {}\n").find("sepc: unknown field"), std::string::npos);
  // Nothing would ever end a TFJob without a Chief or Workers.
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    PS: {command: [a]}\n").find("needs a Chief or Workers"),
            std::string::npos);
  // Limits in a pod template are checked as resources are, before they are narrowed.
  const char* worker_with = "kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker:\n      command: [a]\n"
                            "      template: {spec: {containers: [{resources: {limits: {%s}}}]}}\n";
  auto with_limits = [&](const std::string& limits) {
    char text[512];
    std::snprintf(text, sizeof text, worker_with, limits.c_str());
    return error_of(text);
  };
  EXPECT_NE(with_limits("cpu: 0").find("cpu: must be 1..4096"), std::string::npos) << with_limits("cpu: 0");
  EXPECT_NE(with_limits("nvidia.com/gpu: -1").find("must be 0..64"), std::string::npos);
  EXPECT_NE(with_limits("cpu: 4294967297").find("must be 1..4096"), std::string::npos);
  // A value of the wrong kind where the format wants a mapping is an input error, too.
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker:\n      command: [a]\n      template: {spec: 5}\n")
                .find("job.yaml: "),
            std::string::npos);
}

TEST(JobSpec, OverlongNamesAndMemorySizesAreInputErrors) {
  const std::string worker = "kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {command: [a]";
  EXPECT_EQ(error_of("metadata: {name: " + std::string(50000, 'a') + "}\n" + worker + "}\n"),
            "job.yaml: metadata.name: 50000 characters; a job's name has at most 63");
  EXPECT_NE(error_of(worker + ", resources: {memory: " + std::string(50000, '8') + "}}\n").find("is not a memory size"),
            std::string::npos);
}

TEST(JobSpec, MemorySizesTakeSlurmAndKubernetesUnits) {
  auto memory_of = [](const std::string& m) {
    auto spec = parse_job_spec("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {command: [a], resources: {memory: " + m + "}}\n",
                               "job.yaml");
    return spec.roles[0].resources.memory;
  };
  EXPECT_EQ(memory_of("512"), "512M");
  EXPECT_EQ(memory_of("8G"), "8G");
  EXPECT_EQ(memory_of("8Gi"), "8G");
  EXPECT_EQ(memory_of("100Ki"), "100K");
  for (const char* bad : {"G", "8i", "8Gb", "8GiB", "-8G", "1234567890123M", "8 G"}) {
    EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {command: [a], resources: {memory: \"" +
                       std::string(bad) + "\"}}\n")
                  .find("is not a memory size"),
              std::string::npos)
        << bad;
  }
}

// Numbers are range-checked before they are narrowed: none wraps into a small valid one.
TEST(JobSpec, NumbersPastTheirRangeAreInputErrorsNotWrapped) {
  const std::string worker = "kind: TFJob\nspec:\n  %s\n  tfReplicaSpecs:\n    Worker: {replicas: %s, command: [a]}\n";
  auto spec_with = [&](const std::string& run_policy, const std::string& replicas) {
    char text[512];
    std::snprintf(text, sizeof text, worker.c_str(), run_policy.c_str(), replicas.c_str());
    return std::string(text);
  };
  EXPECT_EQ(error_of(spec_with("runPolicy: {}", "4294967298")),
            "job.yaml: spec.tfReplicaSpecs.Worker.replicas: must be at most 100000 (got 4294967298)");
  EXPECT_EQ(error_of(spec_with("runPolicy: {backoffLimit: 4294967297}", "1")),
            "job.yaml: spec.runPolicy.backoffLimit: must be 0..10000 (got 4294967297)");
  EXPECT_EQ(error_of(spec_with("runPolicy: {backoffLimit: -1}", "1")),
            "job.yaml: spec.runPolicy.backoffLimit: must be 0..10000 (got -1)");
  EXPECT_EQ(error_of(spec_with("runPolicy: {activeDeadlineSeconds: 1e308}", "1")),
            "job.yaml: spec.runPolicy.activeDeadlineSeconds: must be at most 3153600000 (100 years)");
}

TEST(JobSpec, ADeadlineOfLessThanAMinuteIsOneMinuteNotUnlimited) {
  auto time_of = [](const std::string& seconds) {
    auto spec = parse_job_spec("kind: TFJob\nspec:\n  runPolicy: {activeDeadlineSeconds: " + seconds +
                                   "}\n  tfReplicaSpecs:\n    Worker: {command: [a]}\n",
                               "job.yaml");
    std::string script = emit_sbatch(spec, "job.yaml", "cohort");
    size_t at = script.find("#SBATCH --time=");
    return at == std::string::npos ? std::string("none") : script.substr(at, script.find('\n', at) - at);
  };
  EXPECT_EQ(time_of("1e-300"), "#SBATCH --time=1");
  EXPECT_EQ(time_of("60"), "#SBATCH --time=1");
  EXPECT_EQ(time_of("61"), "#SBATCH --time=2");
  EXPECT_EQ(time_of("3153600000"), "#SBATCH --time=52560000");
}

TEST(JobSpec, EmitsOneHeterogeneousComponentPerRole) {
  JobSpec spec = parse_job_spec(kTfJob, "job.yaml");
  std::string script = emit_sbatch(spec, "/jobs/job.yaml", "/opt/cohort/bin/cohort");
  EXPECT_EQ(script.rfind("#!/bin/bash\n", 0), 0u);
  size_t hetjobs = 0;
  for (size_t at = script.find("#SBATCH hetjob"); at != std::string::npos; at = script.find("#SBATCH hetjob", at + 1)) ++hetjobs;
  EXPECT_EQ(hetjobs, 3u);
  EXPECT_NE(script.find("#SBATCH --nodes=1 --ntasks=2 --cpus-per-task=4 --gpus-per-task=1 --mem-per-cpu=2G  # worker"),
            std::string::npos)
      << script;
  EXPECT_NE(script.find("#SBATCH --time=10\n"), std::string::npos);
  EXPECT_NE(script.find("exec /opt/cohort/bin/cohort launch --spec /jobs/job.yaml\n"), std::string::npos);
}

// Kubeflow's published examples, read as they are (fixtures/kubeflow/SOURCES.md).
std::string upstream(const std::string& name) { return std::string(COHORT_LAUNCHER_FIXTURES) + "/kubeflow/" + name; }

std::string load_error(const std::string& name) {
  try {
    load_job_spec(upstream(name));
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    return e.what();
  }
  return "accepted";
}

TEST(KubeflowExamples, ContainersWithoutResourcesGetOneCpuAndNoGpu) {
  JobSpec pytorch = load_job_spec(upstream("pytorch-simple.yaml"));
  ASSERT_EQ(pytorch.roles.size(), 2u);
  EXPECT_EQ(pytorch.roles[0].name, "master");
  EXPECT_EQ(pytorch.roles[0].command, (std::vector<std::string>{"python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1"}));
  EXPECT_EQ(pytorch.roles[1].resources.cpus, 1);
  EXPECT_EQ(pytorch.roles[1].resources.gpus, 0);
  JobSpec tf = load_job_spec(upstream("tensorflow-simple.yaml"));
  ASSERT_EQ(tf.roles.size(), 1u);
  EXPECT_EQ(tf.roles[0].replicas, 2);
  EXPECT_EQ(tf.world_size(), 2);
}

TEST(KubeflowExamples, OnFailureWithoutBackoffLimitRestartsAsKubernetesJobsDo) {
  EXPECT_EQ(load_job_spec(upstream("pytorch-simple.yaml")).backoff_limit, 6);
  // restartPolicy: Never restarts nothing, whatever the limit.
  EXPECT_EQ(load_job_spec(upstream("pi.yaml")).backoff_limit, 0);
  EXPECT_EQ(parse_job_spec("kind: TFJob\nspec:\n  runPolicy: {backoffLimit: 0}\n  tfReplicaSpecs:\n"
                           "    Worker: {restartPolicy: OnFailure, command: [a]}\n",
                           "job.yaml")
                .backoff_limit,
            0);
}

TEST(KubeflowExamples, ArgsWithoutCommandAreRefusedNamingTheMissingEntrypoint) {
  EXPECT_EQ(load_error("pytorch_job_mnist_gloo.yaml"),
            upstream("pytorch_job_mnist_gloo.yaml") +
                ": spec.pytorchReplicaSpecs.Master.template.spec.containers[0].command: missing: args without command "
                "run the image's ENTRYPOINT, and cohort runs no images; give command: the program that ENTRYPOINT runs "
                "(e.g. [python3, /opt/mnist/mnist.py])");
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker: {args: [--backend, gloo]}\n")
                .find("Worker.command: missing: args without command would run '--backend' as the program"),
            std::string::npos);
  // No command at all: the image's ENTRYPOINT was the program.
  for (const char* name : {"pytorch_job_sendrecv.yaml", "tf_job_mnist.yaml"}) {
    EXPECT_NE(load_error(name).find("no command: Kubernetes would run the image's ENTRYPOINT"), std::string::npos) << name;
  }
}

TEST(KubeflowExamples, MpiOperatorWorkersRunningSshdNeedNoCommandHere) {
  JobSpec pi = load_job_spec(upstream("pi.yaml"));
  EXPECT_EQ(pi.kind, JobKind::mpi);
  ASSERT_EQ(pi.roles.size(), 2u);
  EXPECT_EQ(pi.roles[0].command, (std::vector<std::string>{"mpirun", "-n", "2", "/home/mpiuser/pi"}));
  EXPECT_TRUE(pi.roles[1].command.empty());
  EXPECT_EQ(pi.roles[1].replicas, 2);
  EXPECT_EQ(pi.roles[1].resources.memory, "1G");
}

TEST(JobSpec, CpuQuantitiesRoundUpAndRequestsStandInForMissingLimits) {
  auto worker = [](const std::string& resources) {
    return parse_job_spec("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker:\n      template: {spec: {containers: "
                          "[{command: [a], resources: " +
                              resources + "}]}}\n",
                          "job.yaml")
        .roles[0]
        .resources;
  };
  EXPECT_EQ(worker("{limits: {cpu: \"0.5\"}}").cpus, 1);
  EXPECT_EQ(worker("{limits: {cpu: 1500m}}").cpus, 2);
  EXPECT_EQ(worker("{requests: {cpu: 3, memory: 2Gi}}").cpus, 3);
  EXPECT_EQ(worker("{requests: {cpu: 3, memory: 2Gi}}").memory, "2G");
  EXPECT_EQ(worker("{limits: {cpu: 2}, requests: {cpu: 1, nvidia.com/gpu: 1}}").cpus, 2);
  EXPECT_EQ(worker("{limits: {cpu: 2}, requests: {cpu: 1, nvidia.com/gpu: 1}}").gpus, 1);
  EXPECT_NE(error_of("kind: TFJob\nspec:\n  tfReplicaSpecs:\n    Worker:\n      template: {spec: {containers: "
                     "[{command: [a], resources: {limit: {cpu: 1}}}]}}\n")
                .find("resources.limit: unknown field"),
            std::string::npos);
}

// Each role's component takes nodes of its own: Chief, PS and two Workers on two nodes
// would wait for ever as a heterogeneous job. Roles asking for the same resources are
// packed into one plain allocation instead; others are refused, saying why.
TEST(JobSpec, ASpecThatNeedsMoreNodesThanTheClusterHasIsPackedOrRefusedSayingWhy) {
  const std::string roles = "kind: TFJob\nmetadata: {name: dist}\nspec:\n  tfReplicaSpecs:\n    Chief: {command: [a]}\n";
  JobSpec spec = parse_job_spec(roles + "    PS: {command: [a]}\n    Worker: {replicas: 2, command: [a]}\n", "job.yaml");
  EXPECT_EQ(nodes_needed(spec), 3);
  EXPECT_TRUE(packable(spec));
  EXPECT_FALSE(why_it_cannot_start(spec, 3));
  EXPECT_FALSE(why_it_cannot_start(spec, 2));
  const std::string script = emit_sbatch(spec, "/s/job.yaml", "/bin/cohort", true);
  EXPECT_NE(script.find("#SBATCH --ntasks=4 --cpus-per-task=1  # chief 1, ps 1, worker 2\n"), std::string::npos) << script;
  EXPECT_EQ(script.find("hetjob"), std::string::npos) << script;
  EXPECT_EQ(script.find("--nodes"), std::string::npos) << script;

  JobSpec uneven = parse_job_spec(
      roles + "    PS: {command: [a]}\n    Worker: {replicas: 2, resources: {cpus: 4}, command: [a]}\n", "job.yaml");
  EXPECT_FALSE(packable(uneven));
  EXPECT_EQ(why_it_cannot_start(uneven, 2).value_or(""),
            "dist needs 3 nodes (chief 1, ps 1, worker 1: Slurm gives each role's component of a heterogeneous job nodes "
            "of its own) and the cluster has 2; it would wait in the queue for ever, and its roles cannot share one "
            "allocation (they ask for different CPUs, GPUs or memory, or a role for nodes of its own). Run it on a cluster "
            "with 3 nodes, give its roles the same resources, or give it fewer roles");
  EXPECT_FALSE(packable(load_job_spec(upstream("pi.yaml"))));
  EXPECT_EQ(nodes_needed(load_job_spec(upstream("pi.yaml"))), 1);
}

using Variables = std::vector<std::pair<std::string, std::string>>;

// Each replica runs torchrun, which starts nprocPerNode processes: the Training Operator's
// PET_* variables, with the first replica's node as the master.
TEST(Torchrun, NprocPerNodeGivesEveryReplicaTorchrunsVariables) {
  JobSpec spec = parse_job_spec("kind: PyTorchJob\nmetadata: {name: ddp}\nspec:\n  nprocPerNode: \"4\"\n"
                                "  pytorchReplicaSpecs:\n    Master: {command: [torchrun, t.py]}\n"
                                "    Worker: {replicas: 2, command: [torchrun, t.py]}\n",
                                "job.yaml");
  EXPECT_EQ(spec.nproc_per_node, 4);
  EXPECT_FALSE(spec.elastic);
  EXPECT_EQ(torchrun_environment(spec, 3, "node1", 29501, "77"),
            (Variables{{"PET_NPROC_PER_NODE", "4"}, {"PET_NNODES", "3"}, {"PET_MASTER_ADDR", "node1"},
                       {"PET_MASTER_PORT", "29501"}}));
  // The script is the one a job of one process per replica has: torchrun starts the rest.
  EXPECT_NE(emit_sbatch(spec, "/s/job.yaml", "/bin/cohort").find("#SBATCH --nodes=1 --ntasks=2 --cpus-per-task=1  # worker"),
            std::string::npos);
  // Without nprocPerNode or elasticPolicy a replica is one process and gets no PET_* at all.
  EXPECT_TRUE(torchrun_environment(parse_job_spec("kind: PyTorchJob\nspec:\n  pytorchReplicaSpecs:\n"
                                                  "    Worker: {replicas: 2, command: [a]}\n",
                                                  "job.yaml"),
                                   2, "node1", 29501, "77")
                  .empty());
}

// torchrun would count "cpu" and "gpu" on the whole machine; a replica has what Slurm gave it.
TEST(Torchrun, NprocPerNodeNamesCountTheReplicasOwnCpusOrGpus) {
  auto nproc = [](const std::string& value, const std::string& limits) {
    return parse_job_spec("kind: PyTorchJob\nspec:\n  nprocPerNode: " + value +
                              "\n  pytorchReplicaSpecs:\n    Worker:\n      replicas: 2\n      template:\n        spec:\n"
                              "          containers: [{command: [torchrun, t.py], resources: {limits: " + limits + "}}]\n",
                          "job.yaml")
        .nproc_per_node.value_or(0);
  };
  EXPECT_EQ(nproc("cpu", "{cpu: 6}"), 6);
  EXPECT_EQ(nproc("gpu", "{cpu: 6, nvidia.com/gpu: 2}"), 2);
  EXPECT_EQ(nproc("auto", "{cpu: 6, nvidia.com/gpu: 2}"), 2);
  EXPECT_EQ(nproc("auto", "{cpu: 6}"), 6);
  EXPECT_EQ(nproc("3", "{cpu: 1}"), 3);
}

TEST(Torchrun, BadNprocPerNodeIsRefusedNamingTheField) {
  const std::string workers = "  pytorchReplicaSpecs:\n    Worker: {replicas: 2, command: [a]}\n";
  EXPECT_EQ(error_of("kind: PyTorchJob\nspec:\n  nprocPerNode: four\n" + workers),
            "job.yaml: spec.nprocPerNode: must be a whole number (got 'four'); give the processes each replica's "
            "torchrun starts, or cpu, gpu or auto for as many as the replica has CPUs or GPUs");
  EXPECT_NE(error_of("kind: PyTorchJob\nspec:\n  nprocPerNode: 0\n" + workers).find("spec.nprocPerNode: must be 1..1024 (got 0)"),
            std::string::npos);
  EXPECT_EQ(error_of("kind: PyTorchJob\nspec:\n  nprocPerNode: gpu\n" + workers),
            "job.yaml: spec.nprocPerNode: gpu: the worker asks for no GPUs; give its container an nvidia.com/gpu limit, "
            "or nprocPerNode a number");
  EXPECT_EQ(error_of("kind: PyTorchJob\nspec:\n  nprocPerNode: cpu\n  pytorchReplicaSpecs:\n    Master: {command: [a]}\n"
                     "    Worker: {replicas: 2, resources: {cpus: 4}, command: [a]}\n"),
            "job.yaml: spec.nprocPerNode: cpu gives the roles different counts (1 and 4): give their replicas the same "
            "resources, or nprocPerNode a number");
  EXPECT_EQ(error_of("kind: TFJob\nspec:\n  nprocPerNode: 2\n  tfReplicaSpecs:\n    Worker: {command: [a]}\n"),
            "job.yaml: spec.nprocPerNode: only a PyTorchJob's replicas run torchrun; leave it out");
}

// Kubeflow's elastic example: Workers only, c10d rendezvous between min and max nodes.
constexpr const char* kElastic = R"(
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: elastic}
spec:
  nprocPerNode: "2"
  elasticPolicy:
    rdzvBackend: c10d
    minReplicas: 1
    maxReplicas: 3
    maxRestarts: 100
    rdzvConf: [{key: join_timeout, value: "60"}, {key: last_call_timeout, value: "5"}]
  pytorchReplicaSpecs:
    Worker:
      replicas: 2
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            command: [python3, -m, torch.distributed.run, train.py]
            resources: {limits: {cpu: 2, memory: 2Gi}}
)";

TEST(Torchrun, ElasticPolicyGivesTheRendezvousOnTheFirstNode) {
  JobSpec spec = parse_job_spec(kElastic, "job.yaml");
  ASSERT_TRUE(spec.elastic);
  EXPECT_EQ(spec.elastic->min_nodes, 1);
  EXPECT_EQ(spec.elastic->max_nodes, 3);
  EXPECT_EQ(torchrun_environment(spec, 2, "node1", 29501, "77"),
            (Variables{{"PET_NPROC_PER_NODE", "2"},
                       {"PET_NNODES", "1:3"},
                       {"PET_RDZV_BACKEND", "c10d"},
                       {"PET_RDZV_ENDPOINT", "node1:29501"},
                       {"PET_RDZV_ID", "77"},
                       {"PET_RDZV_CONF", "join_timeout=60,last_call_timeout=5"},
                       {"PET_MAX_RESTARTS", "100"}}));
  // One Slurm job of 1 to 3 nodes, a Worker on each: never heterogeneous, never packed.
  const std::string script = emit_sbatch(spec, "/s/job.yaml", "/bin/cohort", true);
  EXPECT_NE(script.find("#SBATCH --nodes=1-3 --ntasks=3 --spread-job --cpus-per-task=2 --mem-per-cpu=1G  # worker, elastic: "
                        "1..3 nodes\n#SBATCH --no-kill\n"),
            std::string::npos)
      << script;
  EXPECT_EQ(script.find("hetjob"), std::string::npos);
  EXPECT_FALSE(packable(spec));
  EXPECT_EQ(nodes_needed(spec), 1);
  EXPECT_FALSE(why_it_cannot_start(spec, 1));
}

TEST(Torchrun, ElasticDefaultsFollowTheTrainingOperator) {
  // minReplicas and maxReplicas default to the Workers' replicas; the rendezvous id to the
  // job's, its port to the one cohort derives; the older nProcPerNode stands in for nprocPerNode.
  JobSpec spec = parse_job_spec("kind: PyTorchJob\nspec:\n  elasticPolicy: {rdzvPort: 23456, rdzvId: run7, nProcPerNode: 3}\n"
                                "  pytorchReplicaSpecs:\n    Worker: {replicas: 2, command: [torchrun, t.py]}\n",
                                "job.yaml");
  EXPECT_EQ(spec.elastic->min_nodes, 2);
  EXPECT_EQ(spec.elastic->max_nodes, 2);
  const Variables env = torchrun_environment(spec, 2, "10.0.0.11", 29501, "77");
  auto value = [&](const std::string& name) {
    for (const auto& [k, v] : env) {
      if (k == name) return v;
    }
    return std::string("(unset)");
  };
  EXPECT_EQ(value("PET_NPROC_PER_NODE"), "3");
  EXPECT_EQ(value("PET_NNODES"), "2:2");
  EXPECT_EQ(value("PET_RDZV_ENDPOINT"), "10.0.0.11:23456");
  EXPECT_EQ(value("PET_RDZV_ID"), "run7");
  EXPECT_EQ(value("PET_MAX_RESTARTS"), "(unset)");  // torchrun's own default stands
  EXPECT_EQ(value("PET_NODE_RANK"), "(unset)");     // the c10d rendezvous numbers the nodes
  EXPECT_NE(emit_sbatch(spec, "/s/job.yaml", "/bin/cohort").find("#SBATCH --nodes=2 --ntasks-per-node=1"), std::string::npos);
  EXPECT_EQ(why_it_cannot_start(spec, 1).value_or(""),
            "cohort-job needs at least minReplicas (2) nodes, a Worker on each, and the cluster has 1; it would wait in "
            "the queue for ever. Lower minReplicas to 1 or less");
}

// Kubeflow's elastic examples, as published: echo's rendezvous is all torchrun's; imagenet's
// autoscaler metrics have no part on Slurm and are left aside with a note.
TEST(KubeflowExamples, ElasticExamplesAreReadWithTheirAutoscalerMetricsLeftAsideWithANote) {
  const JobSpec echo = load_job_spec(upstream("elastic-echo.yaml"));
  EXPECT_EQ(echo.elastic->min_nodes, 1);
  EXPECT_EQ(echo.elastic->max_nodes, 2);
  EXPECT_FALSE(echo.nproc_per_node);
  EXPECT_TRUE(echo.notes.empty());
  const JobSpec imagenet = load_job_spec(upstream("elastic-imagenet.yaml"));
  EXPECT_EQ(imagenet.elastic->max_nodes, 3);
  EXPECT_EQ(imagenet.find("worker")->resources.cpus, 4);
  ASSERT_EQ(imagenet.notes.size(), 1u);
  EXPECT_EQ(imagenet.notes[0].rfind("spec.elasticPolicy.metrics: left aside: they drive a HorizontalPodAutoscaler", 0), 0u);
}

TEST(Torchrun, ElasticPoliciesSlurmCannotHoldAreRefusedSayingWhatToWriteInstead) {
  const std::string workers = "  pytorchReplicaSpecs:\n    Worker: {replicas: 2, command: [a]}\n";
  auto elastic = [&](const std::string& policy) { return error_of("kind: PyTorchJob\nspec:\n  elasticPolicy: " + policy + "\n" + workers); };
  EXPECT_EQ(elastic("{minReplicas: 3, maxReplicas: 2}"),
            "job.yaml: spec.elasticPolicy.minReplicas: minReplicas (3) is greater than maxReplicas (2)");
  EXPECT_EQ(elastic("{minReplicas: 3, maxReplicas: 4}"),
            "job.yaml: spec.pytorchReplicaSpecs.Worker.replicas: 2 is outside minReplicas..maxReplicas (3..4)");
  EXPECT_EQ(elastic("{rdzvBackend: etcd}"),
            "job.yaml: spec.elasticPolicy.rdzvBackend: 'etcd': there is no etcd server on a Slurm cluster; use c10d, "
            "whose store torchrun keeps on the job's first node");
  EXPECT_EQ(elastic("{rdzvBackend: static}"), "job.yaml: spec.elasticPolicy.rdzvBackend: 'static' (expected c10d)");
  EXPECT_NE(elastic("{rdzvHost: job-worker-0}").find("spec.elasticPolicy.rdzvHost: the rendezvous is on the first node"),
            std::string::npos);
  EXPECT_NE(elastic("{minReplicas: 0}").find("spec.elasticPolicy.minReplicas: must be 1.."), std::string::npos);
  EXPECT_EQ(error_of("kind: PyTorchJob\nspec:\n  nprocPerNode: 2\n  elasticPolicy: {nProcPerNode: 2}\n" + workers),
            "job.yaml: spec.elasticPolicy.nProcPerNode: give the count once, as spec.nprocPerNode (nProcPerNode is its "
            "older spelling)");
  EXPECT_EQ(error_of("kind: PyTorchJob\nspec:\n  elasticPolicy: {minReplicas: 1}\n  pytorchReplicaSpecs:\n"
                     "    Master: {command: [a]}\n    Worker: {replicas: 2, command: [a]}\n"),
            "job.yaml: spec.elasticPolicy: an elastic job is all Workers, meeting on the first node Slurm grants; drop the "
            "Master role");
  EXPECT_NE(error_of("kind: PyTorchJob\nspec:\n  elasticPolicy: {maxReplicas: 4}\n  pytorchReplicaSpecs:\n"
                     "    Worker: {replicas: 2, resources: {nodes: 2}, command: [a]}\n")
                .find("spec.elasticPolicy: an elastic job's Workers take a node each"),
            std::string::npos);
}

TEST(TfConfig, FollowsKubeflowAndLeavesTheEvaluatorOut) {
  ClusterMap cluster{{"chief", {"n1:2222"}}, {"ps", {"n2:2222"}}, {"worker", {"n3:2222", "n3:2223"}}, {"evaluator", {"n4:2222"}}};
  auto config = json::parse(tf_config(cluster, "worker", 1));
  EXPECT_EQ(config.at("task").at("type").as_string(), "worker");
  EXPECT_EQ(config.at("task").at("index").as_int(), 1);
  EXPECT_EQ(config.at("environment").as_string(), "cloud");
  EXPECT_EQ(config.at("cluster").at("worker").as_array().size(), 2u);
  EXPECT_EQ(config.at("cluster").find("evaluator"), nullptr);
  EXPECT_EQ(tf_config({{"worker", {"a:1"}}}, "worker", 0),
            R"({"cluster":{"worker":["a:1"]},"task":{"type":"worker","index":0},"environment":"cloud"})");
}

}  // namespace
}  // namespace cohort::launcher
