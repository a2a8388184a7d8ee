"""The method measured as a whole: many seasons with randomised truth tables and shop sizes (issue 20, slow).

Each season drives the steps' ``analyse`` functions in process, in the notebooks' order, on the same snapshot and
configuration, with looks numbered from the season's journal (``playbook.sim.calibration``). ``make test-slow``
lives ``PLAYBOOK_SEASONS`` seasons (default 200; each takes minutes on a laptop, so this is hours) and checks the
method's promises: null levers (no effect, or one that only delays returns) kept in at most 2.5 % of their tests,
working levers kept by their review date about as often as the plans' stated power says, harmful levers never
kept. The measured numbers, with their replications and standard errors, are printed.
"""
from __future__ import annotations

import json
import math
import os

import pytest

from playbook.sim.calibration import markdown, one_season, read_lines, summarise


def _line(nature, decision, power=0.8, by_review=True, claimed=None, true=0.0, in_season=True, ci=(None, None)):
    return {"nature": nature, "decision": decision, "stated_power": power, "by_review": by_review,
            "review_in_season": in_season, "claimed_per_week": claimed, "claimed_ci": list(ci), "true_per_week": true}


def test_the_summary_counts_what_each_season_measured():
    seasons = [{"seconds": 10, "weak_named": [{"real": True}, {"real": False}], "tests": [
        _line("works", "keep", 0.9, claimed=100.0, true=80.0), _line("works", "adjust", 0.7),
        _line("does nothing", "adjust"), _line("only delays", "keep", claimed=50.0),
        _line("harmful", "stop", true=-10.0), _line("works", None, in_season=False)]}]
    s = summarise(seasons)
    assert s["working_kept_by_review"]["hits"] == 1 and s["working_kept_by_review"]["n"] == 2
    assert s["working_mean_stated_power"] == pytest.approx(0.8)
    assert (s["null_kept"]["hits"], s["null_kept"]["n"]) == (1, 2)
    assert s["harmful_stopped"]["share"] == 1.0 and s["weak_named_not_real"]["share"] == 0.5
    assert s["money_claimed_per_week"] == 150.0 and s["money_truly_saved_per_week"] == 80.0


def test_the_money_interval_counts_as_covering_only_when_it_holds_the_true_saving():
    seasons = [{"seconds": 1, "weak_named": [], "tests": [
        _line("works", "keep", claimed=100.0, true=80.0, ci=(60.0, 140.0)),   # holds 80
        _line("works", "keep", claimed=100.0, true=50.0, ci=(60.0, 140.0)),   # misses 50
        _line("only delays", "keep", claimed=40.0, true=0.0, ci=(10.0, 70.0)),  # misses 0
        _line("works", "keep", claimed=None, true=30.0)]}]                     # no money value: not counted
    covers = summarise(seasons)["money_interval_covers_truth"]
    assert (covers["hits"], covers["n"]) == (1, 3)


def test_the_report_reads_seasons_from_several_files_once_each_and_tables_them(tmp_path):
    first = {"season": 0, "seconds": 10, "weak_named": [], "tests": [_line("does nothing", "keep", claimed=5.0)]}
    again = {**first, "tests": [_line("does nothing", "adjust")]}  # season 0 lived again: the later line wins
    other = {"season": 7, "seconds": 30, "weak_named": [{"real": True}], "tests": [_line("works", "keep", 0.5)]}
    (tmp_path / "a.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(other) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(again) + "\n")
    seasons = read_lines([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert [s["season"] for s in seasons] == [0, 7]
    table = markdown(summarise(seasons))
    assert table.startswith("2 seasons, 2 tests read by their review date, 20 s a season")
    assert "| null levers kept (no effect, or only a delay) | 0.0% (0/1, " in table
    assert "| working levers kept by their review date | 100.0% (1/1, " in table and "50.0% on average" in table


@pytest.mark.slow
def test_many_seasons_measure_the_method():
    n = int(os.environ.get("PLAYBOOK_SEASONS", "200"))
    seasons = [one_season(i) for i in range(n)]
    s = summarise(seasons)
    print(json.dumps(s, indent=2))
    null = s["null_kept"]
    if null["n"]:
        # one-sided: at most 2.5 % of null levers kept, three binomial standard errors at 2.5 % above it
        assert null["share"] <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / null["n"]), null
    works = s["working_kept_by_review"]
    power = s["working_mean_stated_power"]
    if works["n"] >= 20 and power is not None:
        # one-sided: kept by the review date at least as often as the plans promised, within three standard errors
        assert works["share"] >= power - 3 * math.sqrt(power * (1 - power) / works["n"]), (works, power)
    assert s["harmful_kept"]["hits"] <= max(1, 0.05 * s["harmful_kept"]["n"]), s["harmful_kept"]
    covers = s["money_interval_covers_truth"]
    if covers["n"] >= 20:
        # one-sided: the track record's 95 % money intervals hold the true saving at their nominal rate or more,
        # within three binomial standard errors (an interval that misses too often is the failure)
        assert covers["share"] >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / covers["n"]), covers
