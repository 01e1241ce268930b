# The benchmark problems of tuner/bench.cpp, for Optuna: the same functions, spaces,
# budgets and seeds. Prints one JSON object: {"problem": [best per seed, ...], ...,
# "suggest_ms_200": median milliseconds of one TPE suggestion after 200 finished trials}.
import json
import math
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(t):
    x1 = t.suggest_float("x1", -5, 10)
    x2 = t.suggest_float("x2", 0, 15)
    b, c = 5.1 / (4 * math.pi ** 2), 5 / math.pi
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(t):
    x = [t.suggest_float("x%d" % i, 0, 1) for i in range(6)]
    s = 0.0
    for i in range(4):
        s += ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j] * 1e-4) ** 2 for j in range(6)))
    return -s


def rosenbrock10(t):
    x = [t.suggest_float("x%d" % i, -2.048, 2.048) for i in range(10)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(9))


def mixed(t):
    x = t.suggest_float("x", -5, 5)
    n = t.suggest_int("n", 1, 20)
    lr = t.suggest_float("lr", 1e-4, 1, log=True)
    opt = t.suggest_categorical("opt", ["a", "b", "c"])
    return (x - 1) ** 2 + (n - 7) ** 2 / 10 + (math.log10(lr) + 2) ** 2 + {"a": 1, "b": 0, "c": 2}[opt]


PROBLEMS = {"branin": branin, "hartmann6": hartmann6, "rosenbrock10": rosenbrock10, "mixed": mixed}


def main():
    trials, seeds = int(sys.argv[1]), int(sys.argv[2])
    out = {}
    for name, f in PROBLEMS.items():
        out[name] = []
        for seed in range(seeds):
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
            study.optimize(f, n_trials=trials)
            out[name].append(study.best_value)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(hartmann6, n_trials=200)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        trial = study.ask()
        hartmann6(trial)
        times.append((time.perf_counter() - t0) * 1000)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    times.sort()
    out["suggest_ms_200"] = times[len(times) // 2]
    print(json.dumps(out))


main()
