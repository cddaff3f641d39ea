"""The Optuna study of `tfjsigr tune`: three objectives, pruning, shared storage, resume.

Objectives: clean accuracy (max), robust accuracy (max; fast AutoAttack, PGD-20 or the J-SIGR
paper's ensemble transfer protocol) and training seconds (min). The study lives in an Optuna
storage, by default SQLite in the run folder: several `tfjsigr tune` processes given the same
study name and storage (a postgresql:// URL across machines) share it. Every running trial
sends a heartbeat; the trial of a killed process is retried by the next worker once its
heartbeat is stale, in the same trial folder (its training resumes from its last epoch), and
finished trials are never run again.
"""

import dataclasses
import json
import pathlib
import random
import time
import warnings

import optuna

from tfjsigr import io
from tfjsigr.tuning import ROBUSTNESS, front

DIRECTIONS = ("maximize", "maximize", "minimize")  # clean, robust, seconds
TRANSFER_SOURCES = 2  # Plain models crafting the transfer attack, seeds recipe seed + 101, +102.
# Wall-clock seconds within 15% count as equal on the front (shared-machine noise).
COST_TOLERANCE = 0.15
QUICK_EVAL_EXAMPLES = 200  # --quick evaluates on this many test images.
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclasses.dataclass
class TuneOptions:
    """How `tune` runs; see `tfjsigr tune --help` for each option."""

    trials: int = 8
    quick: bool = False
    robustness: str = "autoattack"
    min_clean: float = 0.0
    prune_below: float = 0.2
    seed: int = None
    storage: str = None
    study_name: str = None
    eval_examples: int = None
    source: str = "auto"
    data_dir: str = None
    baselines: tuple = ()
    heartbeat: tuple = (20, 60)  # (interval, grace period) in seconds.
    progress: bool = True

    def __post_init__(self):
        if self.robustness not in ROBUSTNESS:
            raise ValueError(
                f"robustness must be one of {list(ROBUSTNESS)}, got {self.robustness!r}"
            )


@dataclasses.dataclass
class TuneResult:
    """What `tune` wrote and found."""

    records: list
    baselines: dict
    files: dict
    best: dict = None


def default_run_dir(space):
    """runs/tune-<recipe name>."""
    from tfjsigr.zoo.layout import DEFAULT_RUNS_DIR

    return DEFAULT_RUNS_DIR / f"tune-{space.recipe_data['name']}"


def default_study_name(space, options):
    return f"{space.recipe_data['name']}-{options.robustness}" + ("-quick" if options.quick else "")


def make_storage(url, heartbeat=(20, 60)):
    """An Optuna RDB storage with heartbeats, retrying the trials of killed workers."""
    interval, grace = heartbeat
    engine = {"connect_args": {"timeout": 300}} if url.startswith("sqlite") else {}
    try:
        return _retry(
            lambda: optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(3),
            )
        )
    except Exception as error:  # noqa: BLE001 (SQLAlchemy and drivers raise many types)
        reason = " ".join(str(error).split())[:300]
        raise ValueError(
            f"--storage {_redacted(url)}: cannot open ({type(error).__name__}: {reason})"
        ) from None


def _retry(create, attempts=5):
    """Workers starting together may race to create the tables: the losers try again."""
    for attempt in range(attempts):
        try:
            return create()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)
    return None


def _redacted(url):
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url.split("@")[-1]


def tune(space, out, options):
    """Runs (or resumes, or joins) the study of a search space, then writes its outputs.

    Args:
        space: a `tfjsigr.tuning.search_space.SearchSpace`.
        out: the run folder (study.db, trials/<n>/, sources/, baselines/ and the outputs).
        options: `TuneOptions`.

    Returns:
        A `TuneResult`; files: front.png, pareto.md, trials.json and best_recipe.toml (when
        a trial reaches `options.min_clean`).
    """
    from tfjsigr.pipeline.runs import TrainingDiverged, check_run_dir

    out = pathlib.Path(out)
    check_run_dir(out)  # Trials write model files: not inside a zoo.
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = options.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.create_study(
        study_name=options.study_name or default_study_name(space, options),
        storage=make_storage(url, options.heartbeat),
        directions=list(DIRECTIONS),
        sampler=_sampler(options),
        load_if_exists=True,
    )
    _enqueue_recipe_defaults(study, space)
    evaluator = Evaluator(space, out, options)
    remaining = options.trials - _finished(study)
    if remaining > 0:
        print(f"study {study.study_name} ({_redacted(url)}): {remaining} more trial(s) to finish")
        study.optimize(
            evaluator.objective,
            n_trials=remaining,
            callbacks=[optuna.study.MaxTrialsCallback(options.trials, states=FINISHED)],
            show_progress_bar=options.progress,
            catch=(TrainingDiverged,),  # A diverged trial fails; the study goes on.
        )
    baselines = {pathlib.Path(b).stem: evaluator.baseline(b) for b in options.baselines}
    return write_outputs(study, space, out, options, baselines)


def _sampler(options):
    # Workers sharing a study must not draw alike: without --seed each process draws its own.
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    startup = min(10, max(2, options.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)


def _finished(study):
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _enqueue_recipe_defaults(study, space):
    """The recipe's own (hand-picked) values as the first trial, so the front shows them."""
    if study.get_trials(deepcopy=False):
        return
    values = {}
    for p in space.parameters:
        value = _get(space.recipe_data, p.path)
        inside = (
            value in p.choices if p.choices else (value is not None and p.low <= value <= p.high)
        )
        if inside:
            values[p.name] = value
    if values:
        study.enqueue_trial(values, skip_if_exists=True)


def _get(data, path):
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


class Evaluator:
    """Trains and measures one recipe: the objective of the study, the baselines."""

    def __init__(self, space, out, options):
        self.space, self.out, self.options = space, pathlib.Path(out), options
        self._sources = None
        self._data = None  # The data set of every trial: a `runs.DataCache` (`_loaded`).

    def objective(self, trial):
        values = self.space.suggest(trial)
        # A retried trial (its worker was killed) inherits the user attributes: same folder.
        folder = trial.user_attrs.get("folder", f"trials/{trial.number}")
        trial.set_user_attr("folder", folder)
        base = self.space.recipe_data["name"]
        recipe = self._variant(
            self.space.recipe(values, name=f"{base}-trial{folder.split('/')[-1]}")
        )
        metrics = self.measure(recipe, self.out / folder, trial)
        trial.set_user_attr("metrics", metrics)
        return metrics["clean"], metrics["robust"], metrics["seconds"]

    def baseline(self, path):
        """Objectives of a baseline recipe, trained once into baselines/<name> (cached)."""
        from tfjsigr.pipeline import recipes

        recipe = self._variant(recipes.load_recipe(path))
        return self.measure(recipe, self.out / "baselines" / recipe.name)

    def _variant(self, recipe):
        if self.options.quick:
            recipe = recipe.quick_variant()
            recipe = dataclasses.replace(
                recipe, eval_examples=min(recipe.eval_examples, QUICK_EVAL_EXAMPLES)
            )
        if self.options.eval_examples:
            recipe = dataclasses.replace(recipe, eval_examples=self.options.eval_examples)
        return recipe

    def measure(self, recipe, folder, trial=None):
        """{"clean", "robust", "seconds", ...} of a recipe trained in `folder` (cached there)."""
        from tfjsigr.evaluation import metrics as evaluation_metrics

        model, seconds, x, y = self._trained(recipe, folder, trial)
        backbone, seed, info = model.model, recipe.seed, self._loaded(recipe).info
        if self.options.robustness == "autoattack":
            metrics = evaluation_metrics.run_figures(backbone, x, y, seed, info)
            metrics["robust"] = metrics["autoattack_accuracy"]
        elif self.options.robustness == "pgd":
            pgd = evaluation_metrics.pgd_accuracy(
                backbone, x, y, seed=seed, **evaluation_metrics.pgd_settings(info.image_shape)
            )
            metrics = {"pgd_accuracy": pgd, "robust": pgd}
        else:
            metrics = self._transfer(recipe, backbone, x, y)
        metrics.setdefault("clean_accuracy", evaluation_metrics.accuracy(backbone, x, y))
        metrics.update(clean=metrics["clean_accuracy"], seconds=seconds, eval_examples=len(y))
        io.write_json_atomic(folder / "objectives.json", metrics)
        return json.loads(json.dumps(metrics, default=float))

    def _trained(self, recipe, folder, trial=None):
        """(model, training seconds, eval x, eval y): trains unless `folder` holds this recipe's model."""
        from tfjsigr.pipeline import runs as training
        from tfjsigr.zoo import layout

        saved = folder / layout.RECIPE_FILE
        if saved.is_file() and io.read_json(saved, "run file") == io.to_json(recipe.to_dict()):
            model = layout.load_model(folder)
            metrics = io.read_json_object(folder / layout.METRICS_FILE, "run file")
            data = training.load_training_data(recipe, data=self._loaded(recipe))
            return model, _cost(metrics), data.x_test, data.y_test
        callbacks = (
            [clean_accuracy_floor(trial, self.options.prune_below, recipe.epochs)] if trial else []
        )
        result = training.train(
            recipe, folder, verbose=0, callbacks=callbacks, evaluate=False,
            data=self._loaded(recipe),
        )  # fmt: skip
        return result.model, _cost(result.metrics), result.eval_images, result.eval_labels

    def _loaded(self, recipe):
        """The study's data set, loaded on first use (every trial trains on the same data)."""
        from tfjsigr.pipeline import runs

        if self._data is None:
            self._data = runs.DataCache(self.options.data_dir, self.options.source)
        return self._data.get(recipe)

    def _transfer(self, recipe, backbone, x, y):
        from tfjsigr.evaluation.attacks import logits_function
        from tfjsigr.evaluation.config import headline_eps
        from tfjsigr.evaluation.transfer import ensemble_transfer_accuracy

        if self._sources is None:
            self._sources = {}
            for i in range(TRANSFER_SOURCES):
                source = _plain_source(self.space, recipe, i)
                model, *_ = self._trained(source, self.out / "sources" / source.name)
                self._sources[source.name] = logits_function(model.model)
        result = ensemble_transfer_accuracy(
            self._sources, {"target": logits_function(backbone)}, x, y,
            eps=headline_eps(self._loaded(recipe).info.image_shape), seed=recipe.seed,
        )
        accuracy = result.pop("accuracy")["target"]
        return {"transfer_accuracy": accuracy, "transfer": result, "robust": accuracy}


def _cost(metrics):
    """Training seconds; a resumed run timed only its last epochs: per epoch times epochs."""
    done = max(1, metrics["epochs"] - metrics["resumed_from_epoch"])
    return metrics["train_seconds"] * metrics["epochs"] / done


def _plain_source(space, recipe, index):
    """A plain model of the recipe's architecture and data, another seed: a transfer source."""
    data = {
        k: v for k, v in space.recipe_data.items() if k not in ("penalties", "adversarial_training")
    }
    data.update(name=f"plain-source{index}", seed=recipe.seed + 101 + index)
    from tfjsigr.pipeline import recipes

    plain = recipes.parse_recipe(data, source=space.source)
    return dataclasses.replace(
        plain, epochs=recipe.epochs, train_examples=recipe.train_examples,
        eval_examples=recipe.eval_examples, batch_size=recipe.batch_size, quick={},
    )  # fmt: skip


def clean_accuracy_floor(trial, floor, epochs):
    """Keras callback pruning a trial whose training accuracy is below `floor` after an epoch.

    Optuna's report/should_prune do not exist for multi-objective studies: the callback records
    each epoch's accuracy as a user attribute and raises `optuna.TrialPruned` itself (never
    after the last epoch: a finished training is measured).
    """
    import keras

    class CleanAccuracyFloor(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            accuracy = float((logs or {}).get("accuracy", 1.0))
            trial.set_user_attr(f"epoch_{epoch + 1}_train_accuracy", accuracy)
            if accuracy < floor and epoch + 1 < epochs:
                raise optuna.TrialPruned(
                    f"train accuracy {accuracy:.3f} < {floor} after epoch {epoch + 1}"
                )

    return CleanAccuracyFloor()


def records_of(study):
    """Trial records (see `tfjsigr.tuning.front`) of every trial of a study."""
    records = []
    for t in study.get_trials(deepcopy=False):
        values = t.values if t.state == optuna.trial.TrialState.COMPLETE else None
        clean, robust, seconds = values or (None, None, None)
        records.append({
            "number": t.number, "state": t.state.name, "params": dict(t.params),
            "clean": clean, "robust": robust, "seconds": seconds,
            "folder": t.user_attrs.get("folder"), "metrics": t.user_attrs.get("metrics"),
        })  # fmt: skip
    return records


def robust_label(options, eval_examples=None):
    where = f", {eval_examples} test images" if eval_examples else ""
    return {
        "autoattack": "AutoAttack (fast) accuracy, L-inf eps 0.1",
        "pgd": "PGD-20 accuracy, L-inf eps 0.1",
        "transfer": f"transfer accuracy (MI-FGSM-10 on {TRANSFER_SOURCES} plain sources), L-inf eps 0.1",
    }[options.robustness] + where


def write_outputs(study, space, out, options, baselines=None):
    """front.png, pareto.md, trials.json and best_recipe.toml of a study, in `out`."""
    records = records_of(study)
    done = [r for r in records if front.has_values(r)]
    examples = next((r["metrics"].get("eval_examples") for r in done if r["metrics"]), None)
    label = robust_label(options, examples)
    name = space.recipe_data["name"]
    files = {"trials": out / "trials.json", "table": out / "pareto.md", "front": out / "front.png"}
    io.write_json_atomic(files["trials"], {"study": study.study_name, "robustness": label,
                                           "quick": options.quick, "baselines": baselines or {},
                                           "trials": records})  # fmt: skip
    table = front.pareto_table(records, options.robustness, COST_TOLERANCE)
    summary = (f"# Pareto set of {name} ({study.study_name})\n\n{len(done)} finished trials of "
               f"{len(records)}; robust: {label}; quick: {options.quick}.\n\n")  # fmt: skip
    io.write_text_atomic(files["table"], summary + table)
    title = f"{name}: {len(records)} trials" + (" (quick)" if options.quick else "")
    front.plot_front({name: records}, files["front"], baselines, label, title, COST_TOLERANCE)
    best = front.best_trial(records, options.min_clean)
    if best is not None:
        data = space.recipe_data_with(best["params"])
        data["name"] = f"{name}-tuned"
        comment = (f"Tuned by `tfjsigr tune` (study {study.study_name}, trial {best['number']}):\n"
                   f"clean {best['clean']:.3f}, robust {best['robust']:.3f} ({label}),\n"
                   f"{best['seconds']:.0f} s of training" + (" with --quick" if options.quick else "")
                   + f"; the most robust trial with clean accuracy >= {options.min_clean}.")  # fmt: skip
        files["best_recipe"] = out / "best_recipe.toml"
        io.write_text_atomic(files["best_recipe"], front.to_toml(data, comment))
    return TuneResult(records, baselines or {}, files, best)
