"""tfnet-sweep: several workers share one Optuna study (journal file or sqlite), a killed
worker's trial is retried and no finished trial is lost, the objective is the validation
score, pruning follows the validation curve, and search-space typos are one-line errors."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import REPO_ROOT, TINY_DATA
from tfnet_jax.experiments import optuna_sweep
from tfnet_jax.experiments.collect import collect
from tfnet_jax.experiments.optuna_storage import HEARTBEAT, WORKER, recover_stale

# Tiny trials (about 15 s each on 2 CPU cores, mostly compiling): small data and model, 10
# steps, evaluations at steps 5 and 10; the space keeps the model small.
TINY = (["experiment=sweep_optuna", "train.max_steps=10", "train.batch_size=16",
         "train.eval_batch_size=32", "train.eval_every=5", "train.log_every=5",
         "train.warmup_steps=2", "model.heads=2", "model.fusion_dim=4", "model.head_hidden=16",
         "sweep.params.model.hidden.choices=[8,16]", "sweep.params.model.gat_layers.choices=[1]"]
        + [f"data.{k}={v}" for k, v in TINY_DATA.items()])
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def worker(sweep_dir, *args, **popen):
    command = [sys.executable, "-m", "tfnet_jax.experiments.optuna_sweep", *TINY,
               f"sweep.dir={sweep_dir}", *args]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=ENV, text=True, **popen)


def load(sweep_dir):
    backend = optuna.storages.journal.JournalFileBackend(str(sweep_dir / "study.journal"))
    return optuna.load_study(study_name="tfnet_sweep",
                             storage=optuna.storages.JournalStorage(backend))


def finished(study):
    return study.get_trials(states=(TrialState.COMPLETE,))


def best_validation(run_dir, monitor="valid/pearson_delta"):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return max(r[monitor] for r in records if monitor in r)


@pytest.mark.e2e
@pytest.mark.slow
def test_two_workers_share_one_journal_study(tmp_path):
    sweep_dir = tmp_path / "sweep"
    procs = [worker(sweep_dir, "sweep.n_trials=3", "sweep.pruner=null", f"sweep.worker={i}",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
    trials = finished(load(sweep_dir))
    assert len(trials) >= 6
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(run_dirs) == len(trials)  # one dir per trial, named by its number
    assert sorted(int(os.path.basename(d).split("_")[0]) for d in run_dirs) == list(range(len(trials)))
    best = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    assert best["value"] == max(t.value for t in trials)
    assert best["config"]["model"]["hidden"] == best["params"]["model.hidden"]
    assert "sweep" not in best["config"]  # trials' configs leave the sweep block out
    assert yaml.safe_load((sweep_dir / "best_overrides.yaml").read_text()) == best["overrides"]
    table = collect(sweep_dir)["table"]
    assert table.loc[table["metric"] == "valid_best", "run"].nunique() == len(trials)


@pytest.mark.e2e
@pytest.mark.slow
def test_killed_worker_loses_no_finished_trial_and_a_rerun_completes(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ("sweep.total_trials=3", "sweep.n_trials=5", "sweep.pruner=null")
    log_file = (tmp_path / "first.log").open("w")
    first = worker(sweep_dir, *args, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it while its second trial runs
        study = load(sweep_dir) if (sweep_dir / "study.journal").exists() else None
        running = study and study.get_trials(states=(TrialState.RUNNING,))
        if study and finished(study) and running and WORKER in running[0].user_attrs:
            break
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = load(sweep_dir)
    done, killed = finished(before)[0], before.get_trials(states=(TrialState.RUNNING,))[0]

    rerun = worker(sweep_dir, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, err[-3000:]
    assert f"Trial {killed.number}: its worker" in err
    after = load(sweep_dir)
    kept = after.trials[done.number]
    assert kept.state == TrialState.COMPLETE and kept.value == done.value
    assert kept.datetime_complete == done.datetime_complete
    assert after.trials[killed.number].state == TrialState.FAIL
    retry = [t for t in finished(after) if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].user_attrs["run_dir"] == killed.user_attrs["run_dir"]
    assert len(finished(after)) == 3 and (sweep_dir / "best.yaml").exists()
    assert collect(sweep_dir)["table"]["run"].nunique() == 3


def test_objective_is_the_validation_best_on_sqlite(tmp_path):
    sweep_dir = tmp_path / "sweep"
    study = optuna_sweep.sweep([*TINY, f"sweep.dir={sweep_dir}", "sweep.n_trials=1",
                                f"sweep.storage=sqlite:///{tmp_path / 'study.db'}"])
    trial = study.best_trial
    run_dir = sweep_dir / os.path.basename(trial.user_attrs["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert trial.value == metrics["train"]["best_score"] == best_validation(run_dir)
    test_scores = {v["pearson_delta"] for v in metrics["model"].values()}
    assert trial.value not in test_scores
    # Every evaluation reached the trial (the pruner's input): steps 5 and 10.
    assert sorted(trial.intermediate_values) == [5, 10]
    assert max(trial.intermediate_values.values()) == trial.value


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_pruned_trial_stops_at_its_first_evaluation(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna_sweep, "make_pruner", lambda settings: AlwaysPrune())
    sweep_dir = tmp_path / "sweep"
    study = optuna_sweep.sweep([*TINY, f"sweep.dir={sweep_dir}", "sweep.n_trials=1"])
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [5]
    run_dir = sweep_dir / os.path.basename(trial.user_attrs["run_dir"])
    assert not (run_dir / "metrics.json").exists()  # stopped before step 10; resumable
    assert (run_dir / "checkpoints").exists()
    assert not (sweep_dir / "best.yaml").exists()  # no finished trial yet


def test_stale_running_trial_is_retried_and_finished_ones_untouched(tmp_path):
    backend = optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))
    storage = optuna.storages.JournalStorage(backend)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    done = study.ask()
    done.suggest_float("x", 0, 1)
    study.tell(done, 0.5)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is gone
    alive, stale, silent = study.ask(), study.ask(), study.ask()
    host = socket.gethostname()
    for trial, who, beat in ((alive, f"{host}:{os.getpid()}", time.time()),
                             (stale, f"{host}:{dead.pid}", time.time()),  # pid gone, fresh beat
                             (silent, "elsewhere:1", time.time() - 1000)):  # no beat for 1000 s
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr(WORKER, who)
        trial.set_user_attr(HEARTBEAT, beat)
    recover_stale(study, storage, grace_period=100, max_retry=3)
    states = [t.state for t in study.trials]
    assert states[:4] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL, TrialState.FAIL]
    retries = study.trials[4:]
    assert [t.state for t in retries] == [TrialState.WAITING] * 2
    assert [t.system_attrs["failed_trial"] for t in retries] == [stale.number, silent.number]
    assert retries[0].params == study.trials[stale.number].params
    assert WORKER not in retries[0].user_attrs  # the retry's worker records itself
    assert study.trials[0].value == 0.5


@pytest.mark.parametrize("arg, names", [
    ("+sweep.params.model.hiden={type:categorical,choices:[8]}", "sweep.params: model.hiden"),
    ("+sweep.params.train.learning_rate.lgo=true", "sweep.params.train.learning_rate.lgo"),
    ("sweep.n_trail=3", "sweep.n_trail"),
])
def test_search_space_typo_is_one_line_error(tmp_path, capsys, arg, names):
    with pytest.raises(SystemExit) as stop:
        optuna_sweep.main(["experiment=sweep_optuna", f"sweep.dir={tmp_path}", arg])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config: ") and names in lines[0], lines
    assert not (tmp_path / "study.journal").exists()  # checked before the study is touched
