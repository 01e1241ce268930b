# A TensorFlow-style spec (1 chief, 1 ps, 2 workers, 1 evaluator) runs as a heterogeneous
# job, one component per role, from the script `cohort launch --emit-sbatch` writes; every
# process's TF_CONFIG parses and follows Kubeflow's format. A spec the allocation cannot
# hold is refused before anything runs. Heterogeneous components take nodes of their own,
# so this test brings up a four-node cluster of its own beside the suite's.
source "$(dirname "$0")/lib.sh"
cohort=$COHORT_BUILD_DIR/bin/cohort
own_cluster --nodes 4 --cpus 2 --gpus-per-node 0
cd "$work"

record='echo "$TF_CONFIG" >'"$work"'/tf-$COHORT_ROLE-$COHORT_ROLE_INDEX'
cat >"$work/tfjob.yaml" <<SPEC
apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: roles-test}
spec:
  tfReplicaSpecs:
    Chief: {replicas: 1, command: [sh, -c, 'until [ -s $work/tf-worker-0 ] && [ -s $work/tf-worker-1 ] && [ -s $work/tf-evaluator-0 ] && [ -s $work/tf-ps-0 ]; do sleep 0.1; done; $record']}
    PS: {replicas: 1, command: [sh, -c, '$record; exec sleep 1000']}
    Worker: {replicas: 2, resources: {nodes: 1, cpus: 1}, command: [sh, -c, '$record']}
    Evaluator: {replicas: 1, command: [sh, -c, '$record']}
SPEC
"$cohort" launch --spec "$work/tfjob.yaml" --emit-sbatch >"$work/tfjob.sh" || fail "--emit-sbatch failed"
expect_eq "$(grep -c '^#SBATCH hetjob' "$work/tfjob.sh")" 3 "hetjob separators in the emitted script"
job=$(submit -o "$work/tfjob.out" "$work/tfjob.sh")
wait_until 120 "the TFJob to finish" "job_done $job"
expect_eq "$(job_state "$job")" COMPLETED "state of the TFJob ($(cat "$work/tfjob.out"))"
# The parameter server, which never ends by itself, is ended once the chief has succeeded;
# cohort says so, and srun's own "task 0: Killed" for it is not printed as if it failed.
grep -q 'succeeded: 5 ranks, 0 restarts, wall .*; rank 1: killed in teardown once the deciding ranks had succeeded' "$work/tfjob.out" || fail "no word of the ended parameter server: $(cat "$work/tfjob.out")"
! grep -E '^(srun: error: .*: (Killed|Terminated)|srun: Force Terminated|slurmstepd: error: \*\*\* STEP)' "$work/tfjob.out" ||
  fail "srun's teardown reports in a successful job's output: $(cat "$work/tfjob.out")"
# Every component ends with the job (a component may still be completing for a moment).
wait_until 30 "every component of job $job to leave the queue" "[[ -z \$(squeue -h -j $job -t PD,R,S,CF) ]]"

/usr/bin/python3 - "$work" <<'CHECK' || fail "TF_CONFIG check failed: $(cat "$work/tfjob.out")"
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
configs = {p.name[3:]: json.loads(p.read_text()) for p in work.glob("tf-*")}
assert sorted(configs) == ["chief-0", "evaluator-0", "ps-0", "worker-0", "worker-1"], sorted(configs)
clusters = {json.dumps(c["cluster"], sort_keys=True) for c in configs.values()}
assert len(clusters) == 1, "every process sees the same cluster"
cluster = configs["chief-0"]["cluster"]
assert sorted(cluster) == ["chief", "ps", "worker"], cluster          # no evaluator, as Kubeflow
assert [len(cluster[r]) for r in ("chief", "ps", "worker")] == [1, 1, 2], cluster
for name, config in configs.items():
    role, index = name.rsplit("-", 1)
    assert config["task"] == {"type": role, "index": int(index)}, config
    assert config["environment"] == "cloud", config
    assert set(config) == {"cluster", "task", "environment"}, config
for role, addresses in cluster.items():
    for address in addresses:
        host, port = address.rsplit(":", 1)
        assert host.startswith("node") and 0 < int(port) < 65536, address
hosts = {role: {a.rsplit(":", 1)[0] for a in cluster[role]} for role in cluster}
assert len(hosts["chief"] | hosts["ps"] | hosts["worker"]) == 3, hosts     # a node per role
assert len(set(cluster["worker"])) == 2, "workers on one node get ports of their own"
CHECK

# The same spec inside a plain allocation of one task, too few for its replicas packed:
# refused, nothing runs.
printf '#!/bin/bash\n%q launch --spec %q\necho "exit $?"\n' "$cohort" "$work/tfjob.yaml" >"$work/plain.sh"
rm -f "$work"/tf-*
job=$(submit -N1 -n1 -o "$work/plain.out" "$work/plain.sh")
wait_until 60 "the plain job to finish" "job_done $job"
grep -q "the spec's roles need 5 tasks, one a replica, but the allocation has 1" "$work/plain.out" || fail "no refusal: $(cat "$work/plain.out")"
grep -q '^exit 2$' "$work/plain.out" || fail "refusal did not exit 2: $(cat "$work/plain.out")"
! compgen -G "$work/tf-*" >/dev/null || fail "a role ran in an allocation that cannot hold the spec"
