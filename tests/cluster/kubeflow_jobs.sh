# Kubeflow's own job examples (tests/launcher/fixtures/kubeflow, byte for byte as
# published) on the mini-cluster, with only the image's program made a path here:
# - PyTorchJob simple.yaml: Katib's mnist.py as master and worker, torch.distributed over
#   gloo, on the synthetic data set of the torchvision shim;
# - smoke-dist pytorch_job_sendrecv.yaml: the master sends to three workers and gets their
#   squares back (its containers ran their image's ENTRYPOINT, added here as command);
# - TFJob simple.yaml: two workers, each getting Kubeflow's TF_CONFIG (a stand-in program
#   checks it: Debian has no TensorFlow);
# - MPI Operator pi.yaml: mpirun across the workers computes pi;
# - dist-mnist tf_job_mnist.yaml (Chief, PS, two Workers: three nodes as a heterogeneous
#   job) runs on the cluster's two, its roles packed into one allocation.
source "$(dirname "$0")/lib.sh"
require_cluster
cohort=$COHORT_BUILD_DIR/bin/cohort
kubeflow=$COHORT_SOURCE_DIR/tests/launcher/fixtures/kubeflow
katib=$COHORT_SOURCE_DIR/tests/tuner/fixtures/katib
cd "$work"

# Debian's Python has torch; `python` and a python3 earlier on PATH may not.
mkdir -p "$work/bin" && ln -s /usr/bin/python3 "$work/bin/python3" && ln -s /usr/bin/python3 "$work/bin/python"
export PATH="$work/bin:$PATH" PYTHONPATH="$katib/shims" COHORT_SHIM_TRAIN_SIZE=320 COHORT_SHIM_TEST_SIZE=100
# The pi image runs mpirun as an unprivileged user; here the test runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# The TFJobs' replicas wait for each other before they end, as TensorFlow's do.
export TF_CONFIG_CHECK_BARRIER=$work/tf-barrier
mpicxx -O2 -o "$work/pi" "$kubeflow/pi.cc" || fail "cannot build pi.cc"

sed "s#/opt/pytorch-mnist/mnist.py#$katib/mnist.py#" "$kubeflow/pytorch-simple.yaml" >pytorch-simple.yaml
sed "s#^\( *\)image: kubeflow/pytorch-dist-sendrecv-test:latest#&\n\1command: [python3, $kubeflow/dist_sendrecv.py]#" \
  "$kubeflow/pytorch_job_sendrecv.yaml" >sendrecv.yaml
sed "s#/var/tf_mnist/mnist_with_summaries.py#$kubeflow/tf_config_check.py#" "$kubeflow/tensorflow-simple.yaml" >tf-simple.yaml
sed "s#/home/mpiuser/pi#$work/pi#" "$kubeflow/pi.yaml" >pi.yaml

declare -A jobs
for name in pytorch-simple sendrecv tf-simple pi; do
  "$cohort" launch --spec "$work/$name.yaml" --emit-sbatch >"$work/$name.sh" || fail "--emit-sbatch $name.yaml failed"
  jobs[$name]=$(submit -o "$work/$name.out" "$work/$name.sh")
done
for name in pytorch-simple sendrecv tf-simple pi; do
  wait_until 300 "$name.yaml to finish" "job_done ${jobs[$name]}"
  expect_eq "$(job_state "${jobs[$name]}")" COMPLETED "state of $name.yaml ($(tail -20 "$work/$name.out"))"
done

grep -q "Using distributed PyTorch with gloo backend" pytorch-simple.out || fail "mnist.py did not run distributed: $(tail pytorch-simple.out)"
expect_eq "$(grep -c 'metricName: loss' pytorch-simple.out)" 2 "mnist.py processes that finished their epoch"
expect_eq "$(grep -c 'Result from worker [123] : ' sendrecv.out)" 3 "workers whose result the master received"
expect_eq "$(grep -c 'tf_config ok worker [01] of 2 ' tf-simple.out)" 2 "workers with Kubeflow's TF_CONFIG"
grep -q 'pi is approximately 3\.1[34]' pi.out || fail "pi.yaml did not compute pi: $(tail pi.out)"
expect_eq "$(grep -c '^.*Rank [01] on host node' pi.out)" 2 "MPI ranks of pi.yaml"

# Its image's ENTRYPOINT, dist_mnist.py, is TensorFlow's: the stand-in takes its place.
sed "s#^\( *\)image: kubeflow/tf-dist-mnist-test:latest#&\n\1command: [python, $kubeflow/tf_config_check.py]#" \
  "$kubeflow/tf_job_mnist.yaml" >tf-mnist.yaml
# Chief, PS and two Workers would need three nodes as a heterogeneous job; on two, the
# roles (which ask for the same resources) are packed into one plain allocation.
"$cohort" launch --spec "$work/tf-mnist.yaml" --emit-sbatch >tf-mnist.sh || fail "--emit-sbatch tf_job_mnist.yaml failed"
grep -q '^#SBATCH --ntasks=4 .*# chief 1, ps 1, worker 2$' tf-mnist.sh || fail "tf_job_mnist.yaml was not packed: $(cat tf-mnist.sh)"
! grep -q hetjob tf-mnist.sh || fail "tf_job_mnist.yaml was written as a heterogeneous job: $(cat tf-mnist.sh)"
mnist=$(submit -o "$work/tf-mnist.out" "$work/tf-mnist.sh")
wait_until 300 "tf_job_mnist.yaml to finish" "job_done $mnist"
expect_eq "$(job_state "$mnist")" COMPLETED "state of tf_job_mnist.yaml ($(tail -20 "$work/tf-mnist.out"))"
# The chief decides the job (Kubeflow's rule); what it was told of the cluster names every replica.
/usr/bin/python3 - "$work/tf-mnist.out" <<'PY' || fail "the chief's TF_CONFIG: $(grep tf_config tf-mnist.out)"
import json, re, sys
line = next(l for l in open(sys.argv[1]) if "tf_config ok chief 0 of 1 " in l)
cluster = json.loads(line.split(" of 1 ", 1)[1])
assert {k: len(v) for k, v in cluster.items()} == {"chief": 1, "ps": 1, "worker": 2}, cluster
assert len({a for v in cluster.values() for a in v}) == 4, cluster
PY
