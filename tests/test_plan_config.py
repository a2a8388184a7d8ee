"""experiments.max_weeks: the longest run a plan may ask for (playbook.yaml)."""
from __future__ import annotations

import pytest

from playbook.config.loader import load_config
from playbook.core.paths import DEFAULT_CONFIG
from playbook.core.settings import ConfigError


def with_max_weeks(tmp_path, value: str):
    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace("  max_weeks: 8\n", f"  max_weeks: {value}\n")
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_maximum_is_eight_weeks():
    assert load_config().experiments.max_weeks == 8


def test_the_maximum_is_read_from_the_file(tmp_path):
    assert load_config(with_max_weeks(tmp_path, "12")).experiments.max_weeks == 12


@pytest.mark.parametrize("value", ["0", "2.5", "true", "eight"])
def test_a_maximum_that_is_not_a_whole_number_of_weeks_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="max_weeks"):
        load_config(with_max_weeks(tmp_path, value))
