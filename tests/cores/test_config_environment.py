"""systemd's $RUNTIME_DIRECTORY and $STATE_DIRECTORY win over runtime_dir and state_dir in the config."""

from __future__ import annotations

from pathlib import Path

from larappp.config import ModemConfig, load_config

CONFIG = '[modem]\nport = "sim"\nruntime_dir = "/tmp/from-file/run"\nstate_dir = "/tmp/from-file/state"\n[[session]]\ncid = 1\napn = "internet"\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wwan0.toml"
    path.write_text(text)
    return path


def test_the_file_is_used_when_systemd_gives_no_directories(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, CONFIG), environ={})
    assert (config.modem.runtime_dir, config.modem.state_dir) == ("/tmp/from-file/run", "/tmp/from-file/state")


def test_the_service_directories_win_over_the_file(tmp_path: Path) -> None:
    env = {"RUNTIME_DIRECTORY": "/run/larappp/wwan0", "STATE_DIRECTORY": "/var/lib/larappp/wwan0"}
    config = load_config(_write(tmp_path, CONFIG), environ=env)
    assert config.modem.runtime_dir == "/run/larappp/wwan0"
    assert config.modem.state_dir == "/var/lib/larappp/wwan0"
    assert config.modem.port == "sim"  # the rest of the file is untouched


def test_each_variable_alone_replaces_only_its_own_directory(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, CONFIG), environ={"STATE_DIRECTORY": "/var/lib/larappp/wwan0"})
    assert (config.modem.runtime_dir, config.modem.state_dir) == ("/tmp/from-file/run", "/var/lib/larappp/wwan0")


def test_several_directories_joined_by_colons_give_the_first() -> None:
    config = load_config(None, environ={"RUNTIME_DIRECTORY": "/run/larappp/a:/run/other", "STATE_DIRECTORY": ""})
    assert config.modem.runtime_dir == "/run/larappp/a"
    assert config.modem.state_dir == ModemConfig().state_dir  # empty means unset
