"""The one wrapper every command line goes through (`tfnet-train`, `tfnet-predict`, ...).

It sets up logging (Hydra's job log for Hydra commands, stderr for the others), hides
third-party noise that every run would print, answers `-h/--help` with what the command
does and one example, and turns a user error (`TfnetError`, a Hydra or OmegaConf config
error, an unreadable or unwritable path, a corrupt gzip input) into one line `error: ...` on
stderr with exit status 2 and no traceback. Set `TFNET_JAX_DEBUG=1` (or Hydra's
`HYDRA_FULL_ERROR=1`) to get the traceback instead; a bug always shows its traceback.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
import textwrap
import zlib
from dataclasses import dataclass
from typing import Callable, NoReturn

import hydra
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from tfnet_jax.config import check_experiment_family, config_dir, describe_error
from tfnet_jax.errors import ConfigError, TfnetError
from tfnet_jax.host_memory import reuse_freed_memory
from tfnet_jax.schemas.checks import did_you_mean

EXIT_USER_ERROR = 2
USER_ERRORS = (TfnetError, HydraException, OmegaConfBaseException)
# INFO lines printed on every run that tell a user nothing: Orbax (through absl) logs each
# checkpoint save, JAX each accelerator plugin it could not load ("Unable to initialize
# backend 'tpu'"), NumExpr its thread count. Their warnings still show.
NOISY_LOGGERS = ("absl", "jax._src.xla_bridge", "numexpr.utils")
HELP_FLAGS = ("-h", "--help")
DUMP_LINE = re.compile(r"(full_key|object_type|reference_type|ref_type)\s*[:=]")
DEBUG_ENV = "HYDRA_FULL_ERROR"  # Hydra's own switch for full tracebacks
OWN_DEBUG_ENV = "TFNET_JAX_DEBUG"  # the package's switch: the same, for every command
# A location that cannot be written (or read): the user's to fix, not a bug.
PLACE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


CONFIG_DIR = config_dir()


@dataclass(frozen=True)
class Command:
    """What `--help` says about one console script."""

    name: str      # the console script, e.g. tfnet-train
    usage: str     # arguments after the name
    summary: str   # what the command does
    example: str   # one complete command line

    def help_text(self, hydra_config: str | None = None) -> str:
        paragraphs = [f"usage: {self.name} {self.usage}", textwrap.fill(self.summary, 88),
                      f"Example:\n  {self.example}"]
        if hydra_config:
            paragraphs.append(textwrap.fill(
                f"Arguments are Hydra overrides (KEY=VALUE) of {CONFIG_DIR}/{hydra_config}.yaml; "
                "`--cfg job` prints the composed config, `--hydra-help` lists Hydra's flags.", 88))
        return "\n\n".join(paragraphs) + "\n"


def quiet_noise() -> None:
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def log_to_stderr() -> None:
    """Logging for commands without Hydra: the package's INFO lines, bare, on stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    for name in ("tfnet_jax", "__main__"):  # `python -m tfnet_jax.X` logs as __main__
        logging.getLogger(name).setLevel(logging.INFO)


def one_line(err: BaseException) -> str:
    """The error's message (and an OmegaConf cause's) on one line, without Hydra's and
    OmegaConf's diagnostic dumps (search path, object types)."""
    parts = [err]
    if isinstance(err.__cause__, OmegaConfBaseException):  # Hydra wraps the useful part
        parts.append(err.__cause__)
    words: list[str] = []
    for part in parts:
        message = str(part).split("Config search path:")[0]
        words.extend(line.strip() for line in message.splitlines()
                     if line.strip() and not DUMP_LINE.match(line.strip()))
        full_key = getattr(part, "full_key", None)
        if full_key and full_key not in " ".join(words):
            words.append(f"(at {full_key})")
    return " ".join(dict.fromkeys(words)) or type(err).__name__


def user_error_line(err: BaseException) -> str | None:
    """The one line for an expected failure (the user's to fix); None for a bug."""
    if isinstance(err, TfnetError):
        return one_line(err)
    if isinstance(err, USER_ERRORS):  # a Hydra / OmegaConf composition error
        return describe_error(err)
    if isinstance(err, OSError) and err.errno in PLACE_ERRNOS:
        where = err.filename or "a path"
        return (f"{where}: {err.strerror or err}; check that the path exists, is the right kind "
                f"(file or folder), is writable and has free space")
    if isinstance(err, zlib.error):  # readers name the file; this is the fallback
        return f"a gzip input is corrupt ({err}); re-download or re-compress it"
    return None


def exit_with_error(err: BaseException) -> NoReturn:
    print(f"error: {user_error_line(err)}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_USER_ERROR)


def launcher_job_error(err: BaseException) -> tuple[str, int] | None:
    """(one line, exit status) for a sweep run that failed under a submitit launcher
    (hydra/launcher=slurm|local): the run's own `error:` line (a user error, status 2) or its
    last line (status 1), and its log; None for any other exception.

    submitit raises these in the submitting process with the run's whole stderr or traceback.
    """
    if not any(c.__module__.startswith("submitit.") for c in type(err).__mro__):
        return None
    lines = [line.strip() for line in str(err).splitlines() if line.strip().strip("-")]
    own = [line[len("error: "):] for line in lines if line.startswith("error: ")]
    found = re.search(r"with path (\S+)_result\.pkl", str(err))
    log = f" (log: {found.group(1)}_log.err)" if found else ""
    message = own[-1] if own else (lines[-1] if lines else type(err).__name__)
    return f"sweep run failed: {message}{log}", EXIT_USER_ERROR if own else 1


def _user_wants_traceback() -> bool:
    return "1" in (os.environ.get(DEBUG_ENV), os.environ.get(OWN_DEBUG_ENV))


def _run(command: Command, body: Callable[[], object], argv: list[str],
         hydra_config: str | None = None, traceback: bool = False) -> int:
    """Help, quiet logging and one-line user errors around one command's `body()`."""
    reuse_freed_memory()  # before the command's first computation starts jax's threads
    quiet_noise()
    if any(arg in HELP_FLAGS for arg in argv):
        print(command.help_text(hydra_config), end="")
        return 0
    try:
        body()
    except Exception as err:
        if traceback:
            raise
        if user_error_line(err) is not None:
            exit_with_error(err)
        failed = launcher_job_error(err)
        if failed is None:
            raise
        print(f"error: {failed[0]}", file=sys.stderr, flush=True)
        raise SystemExit(failed[1]) from None
    return 0


def hydra_command(command: Command, config_name: str):
    """Decorator: `task(cfg)` over `CONFIG_DIR/<config_name>.yaml` -> the console script's `main()`.

    The decorated `main(cfg=None)` parses the command line like `hydra.main`; called with a
    config it runs `task(cfg)` directly. The task's return value reaches Hydra's sweepers.
    """
    def decorate(task: Callable):
        wants = {"traceback": False}  # the user's choice, read before main() sets DEBUG_ENV

        @functools.wraps(task)
        def job(cfg):
            quiet_noise()  # Hydra has just (re)configured logging for this job
            try:
                return task(cfg)
            except Exception as err:
                if wants["traceback"] or user_error_line(err) is None:
                    raise
                exit_with_error(err)  # raised further, Hydra would add "Error executing job" lines

        if job.__module__ == "__main__":  # `python -m tfnet_jax.X`: Hydra names the job (log file) X
            job.__module__ = getattr(sys.modules["__main__"].__spec__, "name", "__main__")
        hydra_main = hydra.main(version_base="1.3", config_path=CONFIG_DIR,
                                config_name=config_name)(job)

        @functools.wraps(task)
        def main(cfg=None):
            if cfg is not None:
                return job(cfg)
            before = os.environ.get(DEBUG_ENV)
            wants["traceback"] = _user_wants_traceback()
            os.environ[DEBUG_ENV] = "1"  # composition errors then reach _run, not Hydra's report
            def compose_and_run():
                if config_name == "config":  # a wrong-family experiment: one clear line, not a key error
                    check_experiment_family([a for a in sys.argv[1:] if "=" in a])
                return hydra_main()
            try:
                return _run(command, compose_and_run, sys.argv[1:], config_name,
                            wants["traceback"])
            finally:
                if before is None:
                    os.environ.pop(DEBUG_ENV, None)

        main.command = command
        return main
    return decorate


def plain_command(command: Command):
    """Decorator: `task(argv)` of a command without Hydra -> the console script's `main(argv=None)`."""
    def decorate(task: Callable[[list[str]], object]):
        @functools.wraps(task)
        def main(argv: list[str] | None = None) -> int:
            argv = sys.argv[1:] if argv is None else list(argv)
            log_to_stderr()
            return _run(command, lambda: task(argv), argv, traceback=_user_wants_traceback())

        main.command = command
        return main
    return decorate


def key_value_args(argv: list[str], allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    """`KEY=VALUE` arguments, checked against the allowed and required keys."""
    args = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in allowed:
            hint = did_you_mean(key, allowed) if sep else ""
            raise ConfigError(f"argument {arg!r}: {hint}expected KEY=VALUE with KEY one of {list(allowed)}")
        args[key] = value
    missing = [key for key in required if key not in args]
    if missing:
        raise ConfigError(f"missing argument(s): {', '.join(f'{k}=...' for k in missing)}")
    return args


def on_loaded_run(cfg, schema: type, function: str, family: str | None = None):
    """An analysis command's body: the composed options checked by `schema` (before the run is
    loaded), the run dir loaded, then the library `function` ("module:attr.path", imported
    here, so jax starts after `_run` has tuned host memory) called as `function(run, **options)`."""
    import importlib

    from omegaconf import OmegaConf

    from tfnet_jax.api import load_run
    options = OmegaConf.to_container(cfg, resolve=True)
    schema(**options).check()
    which = {"which": options.pop("which")} if "which" in options else {}  # a loading option
    run = load_run(options.pop("run_dir"), family=family, **which)
    module, _, path = function.partition(":")
    target = importlib.import_module(module)
    for attr in path.split("."):
        target = getattr(target, attr)
    return target(run, **options)
