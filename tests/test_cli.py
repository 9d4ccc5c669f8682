"""The command-line layer: console scripts, --help, one-line errors, quiet imports."""
import configparser
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conftest import REPO_ROOT
from tfnet_jax import cli
from tfnet_jax.errors import ConfigError


def declared_scripts() -> dict[str, str]:
    """setup.cfg's console scripts: name -> module:function."""
    parser = configparser.ConfigParser()
    parser.read(REPO_ROOT / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines)


def run_script(*args, env=None, cwd=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


def test_every_command_has_a_console_script():
    assert set(declared_scripts()) == {"tfnet-train", "tfnet-predict", "tfnet-lightup",
                                       "tfnet-core-tfs", "tfnet-disease", "tfnet-twas",
                                       "tfnet-collect", "tfnet-sweep", "tfnet-networks"}


def test_every_console_script_help_says_what_and_gives_an_example():
    # One interpreter for all seven (imports once); each entry point is what pip installed.
    code = textwrap.dedent("""
        import contextlib, io, json, sys
        from importlib.metadata import entry_points
        out = {}
        for ep in entry_points(group="console_scripts"):
            if ep.value.startswith("tfnet_jax."):
                sys.argv = [ep.name, "--help"]
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    status = ep.load()()
                out[ep.name] = [status, buffer.getvalue()]
        print(json.dumps(out))
    """)
    result = run_script(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    helps = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert set(helps) == set(declared_scripts()), "installed entry points differ from setup.cfg"
    for name, (status, text) in helps.items():
        assert status == 0, name
        assert text.startswith(f"usage: {name} "), text
        example = text.split("Example:\n", 1)[1].strip().splitlines()[0]
        assert example.startswith(f"{name} "), (name, example)


@pytest.mark.e2e
def test_console_script_on_path_answers_help():
    result = run_script("tfnet-twas", "--help")
    assert result.returncode == 0 and "Example:" in result.stdout, result.stderr


@pytest.mark.parametrize("args, names", [
    (["tfnet-predict", "run_dir={missing}"], "run_dir"),         # a DataError inside the command
    (["tfnet-train", "model.hiden=3", "hydra.run.dir={tmp}/run"], "model.hiden"),  # composition
    (["tfnet-train", "model.hidden=-5", "hydra.run.dir={tmp}/run"], "model.hidden"),  # validate()
    (["tfnet-twas", "run_dir={missing}", "top=x"], "top"),     # a ConfigError, no Hydra
])
def test_user_error_is_one_line_with_exit_2(tmp_path, args, names):
    args = [a.format(missing=tmp_path / "missing", tmp=tmp_path) for a in args]
    result = run_script(*args, cwd=tmp_path)
    assert result.returncode == cli.EXIT_USER_ERROR, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], lines


@pytest.mark.e2e
def test_hydra_full_error_keeps_the_traceback(tmp_path):
    result = run_script("tfnet-train", "model.hiden=3", f"hydra.run.dir={tmp_path}/run",
                        env={"HYDRA_FULL_ERROR": "1"}, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_importing_the_package_keeps_the_matplotlib_backend():
    modules = ["tfnet_jax"] + [target.split(":")[0] for target in declared_scripts().values()]
    code = textwrap.dedent(f"""
        import importlib, matplotlib
        before = dict.__getitem__(matplotlib.rcParams, "backend")  # unresolved: no backend chosen
        for name in {modules!r}:
            importlib.import_module(name)
        after = dict.__getitem__(matplotlib.rcParams, "backend")
        assert after is before, f"backend switched to {{after!r}}"
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr


def test_one_line_keeps_the_message_and_drops_the_dumps():
    cfg = OmegaConf.create({"model": {"hidden": 1}})
    OmegaConf.set_struct(cfg, True)
    try:
        cfg.model.hiden = 3
    except OmegaConfBaseException as cause:
        err = ConfigCompositionException("Could not override 'model.hiden'.\nTo append use +model.hiden=3")
        err.__cause__ = cause
    line = cli.one_line(err)
    assert "\n" not in line and "object_type" not in line
    assert line.startswith("Could not override 'model.hiden'. To append use +model.hiden=3")
    assert "hiden" in line.split("+model.hiden=3", 1)[1]  # the cause is kept


def test_key_value_args_name_the_bad_argument():
    allowed, required = ("run_dir", "top"), ("run_dir",)
    assert cli.key_value_args(["run_dir=a=b"], allowed, required) == {"run_dir": "a=b"}
    with pytest.raises(ConfigError, match="'colour=red'.*'run_dir', 'top'"):
        cli.key_value_args(["run_dir=x", "colour=red"], allowed, required)
    with pytest.raises(ConfigError, match="run_dir=..."):
        cli.key_value_args(["top=3"], allowed, required)


def test_config_dir_is_the_repository_configs():
    assert Path(cli.CONFIG_DIR) == REPO_ROOT / "configs"


def test_every_command_tunes_host_memory_before_its_body(monkeypatch, capsys):
    # The commands (not `import tfnet_jax`) keep freed host memory for reuse, before jax runs.
    from tfnet_jax import twas
    calls = []
    monkeypatch.setattr(cli, "reuse_freed_memory", lambda: calls.append(1))
    assert twas.main(["--help"]) == 0
    assert calls == [1] and "tfnet-twas" in capsys.readouterr().out
