"""The weekly runner closes the known traps of papermill and nbconvert."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from playbook.data.validation import ContractError
from playbook.run.weekly import RunError, check_kernel, check_parameters, run_week

PARAMS = 'week = ""\ndata = ""\nconfig = ""\nrun_dir = ""\njournal = ""\nsnapshot = ""\n'


def make_notebook(path: Path, body: str, params: str | None = PARAMS, title: str = "Test step") -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [new_markdown_cell(f"# {title}")]
    if params is not None:
        p = new_code_cell(params)
        p.metadata["tags"] = ["parameters"]
        cells.append(p)
    cells.append(new_code_cell(body))
    nb.cells = cells
    nbformat.write(nb, str(path))
    return path


WRITE_SUMMARY = (
    "from playbook.report.summary import update_summary\n"
    "update_summary(run_dir, week=week, data_source='SECRET-FREE-OUTPUT')\n"
    "print('data is', data)"
)


def test_a_notebook_without_a_parameters_cell_is_refused(tmp_path):
    nb = make_notebook(tmp_path / "01_x.ipynb", "print(1)", params=None)
    with pytest.raises(RunError, match="no cell tagged 'parameters'"):
        check_parameters(nb, {"week": "2026-W46"})


def test_a_parameter_the_notebook_does_not_declare_is_refused(tmp_path):
    nb = make_notebook(tmp_path / "01_x.ipynb", "print(1)")
    with pytest.raises(RunError, match=r"\['wek'\] are not declared"):
        check_parameters(nb, {"wek": "2026-W46"})


def test_a_notebook_missing_a_common_parameter_is_refused(tmp_path):
    nb = make_notebook(tmp_path / "01_x.ipynb", "print(1)", params='week = ""\n')
    with pytest.raises(RunError, match="lacks"):
        check_parameters(nb, {"week": "2026-W46"})


def test_a_successful_run_writes_html_without_the_injected_parameters(tiny_shop, tmp_path):
    nb = make_notebook(tmp_path / "01_ok.ipynb", WRITE_SUMMARY)
    report = run_week("2026-W46", tiny_shop, tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    html = (report / "01_ok.html").read_text(encoding="utf-8")
    assert "injected-parameters" not in html
    assert 'run_dir = "' not in html  # the injected cell would print every parameter
    assert json.loads((report / "summary.json").read_text())["week"] == "2026-W46"
    assert (report / "brief" / "01_ok.html").is_file() and (report / "index.html").is_file()


def test_parameters_keep_their_type_and_paths_do_not_depend_on_the_working_directory(tiny_shop, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = make_notebook(tmp_path / "01_types.ipynb", "assert isinstance(week, str) and week == '2026-W46'\n"
                       "import os; assert os.path.isabs(run_dir) and os.path.isabs(data)")
    run_week("2026-W46", tiny_shop, "reports-rel", journal=tmp_path / "j", notebooks=[nb])
    from playbook.core.paths import REPO_ROOT

    assert (REPO_ROOT / "reports-rel" / "2026-W46" / "index.html").is_file()
    import shutil

    shutil.rmtree(REPO_ROOT / "reports-rel")


def test_a_failing_notebook_names_the_cell_and_leaves_the_previous_report_untouched(tiny_shop, tmp_path):
    out = tmp_path / "reports"
    good = make_notebook(tmp_path / "01_ok.ipynb", WRITE_SUMMARY)
    report = run_week("2026-W46", tiny_shop, out, journal=tmp_path / "j", notebooks=[good])
    before = {p.relative_to(report): p.read_bytes() for p in report.rglob("*") if p.is_file()}
    bad = make_notebook(tmp_path / "02_bad.ipynb", "raise ValueError('planted failure')")
    with pytest.raises(RunError, match=r"02_bad.ipynb failed at cell .*ValueError: planted failure"):
        run_week("2026-W46", tiny_shop, out, journal=tmp_path / "j", notebooks=[good, bad])
    after = {p.relative_to(report): p.read_bytes() for p in report.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in out.iterdir() if p.name.startswith(".2026-W46.staging")]
    failed = out / "2026-W46.failed"
    assert (failed / "02_bad.ipynb").is_file() and "planted failure" in (failed / "error.txt").read_text()
    assert not list(failed.glob("*.html"))
    run_week("2026-W46", tiny_shop, out, journal=tmp_path / "j", notebooks=[good])
    assert not failed.exists()  # a later complete run clears the failure mark


def test_a_timeout_is_a_failure_and_exports_nothing(tiny_shop, tmp_path):
    slow = make_notebook(tmp_path / "01_slow.ipynb", "import time; time.sleep(30)")
    with pytest.raises(RunError, match="01_slow.ipynb"):
        run_week("2026-W46", tiny_shop, tmp_path / "reports", journal=tmp_path / "j", notebooks=[slow], timeout=3)
    assert not (tmp_path / "reports" / "2026-W46").exists()


def test_broken_input_stops_the_run_before_anything_is_written(tmp_path):
    from conftest import TINY_SHOP, write_shop

    broken = {k: list(v) for k, v in TINY_SHOP.items()}
    broken["order_lines"].append(("L9", "O-unknown", "A", "knitwear", 1, 50.0, 0.0, 20.0))
    folder = write_shop(tmp_path / "broken", broken)
    nb = make_notebook(tmp_path / "01_ok.ipynb", WRITE_SUMMARY)
    with pytest.raises(ContractError, match="order_lines.order_id"):
        run_week("2026-W46", folder, tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    assert not (tmp_path / "reports").exists()


def test_a_user_kernel_spec_that_shadows_the_environment_is_refused(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": ["/usr/bin/some-other-python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    with pytest.raises(RunError, match="some-other-python"):
        check_kernel()


def test_the_environment_kernel_is_accepted():
    check_kernel()


# --- refusals before any notebook runs ---------------------------------------------------------

MARK_RUN = "from pathlib import Path\nPath(run_dir).parent.joinpath('notebook-ran').write_text('yes')"


def test_a_configuration_mistake_stops_the_run_before_any_notebook(tiny_shop, tmp_path):
    from playbook.core.paths import DEFAULT_CONFIG
    from playbook.core.settings import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace("red_below: 0.80", "red_belw: 0.80", 1))
    nb = make_notebook(tmp_path / "01_mark.ipynb", MARK_RUN)
    with pytest.raises(ConfigError, match=r"bad.yaml: decision_table\[3\].*red_below"):
        run_week("2026-W46", tiny_shop, tmp_path / "reports", config=bad, journal=tmp_path / "j", notebooks=[nb])
    assert not (tmp_path / "reports").exists()


def test_main_exits_2_on_a_configuration_mistake_naming_the_file(tiny_shop, tmp_path, capsys):
    from playbook.run.weekly import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("metrics: {slices: [colour]}\ndecision_table: []\n")
    code = main(["--week", "2026-W46", "--data", str(tiny_shop), "--out", str(tmp_path / "reports"),
                 "--config", str(bad), "--journal", str(tmp_path / "j")])
    err = capsys.readouterr().err
    assert code == 2 and "configuration" in err and "bad.yaml: metrics.slices" in err
    assert not (tmp_path / "reports").exists()


def test_a_week_after_the_latest_complete_week_is_refused_naming_the_range(tiny_shop, tmp_path):
    nb = make_notebook(tmp_path / "01_mark.ipynb", MARK_RUN)
    with pytest.raises(ValueError, match=r"week 2026-W47 is after .*2026-W45 \.\. 2026-W46"):
        run_week("2026-W47", tiny_shop, tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    assert not (tmp_path / "reports").exists()


def test_a_week_before_the_data_is_refused_naming_the_range(tiny_shop, tmp_path):
    nb = make_notebook(tmp_path / "01_mark.ipynb", MARK_RUN)
    with pytest.raises(ValueError, match=r"week 2026-W30 is before the data.*2026-W45 \.\. 2026-W46"):
        run_week("2026-W30", tiny_shop, tmp_path / "reports", journal=tmp_path / "j", notebooks=[nb])
    assert not (tmp_path / "reports").exists()


def test_main_exits_2_on_a_week_outside_the_data(tiny_shop, tmp_path, capsys):
    from playbook.run.weekly import main

    code = main(["--week", "2026-W52", "--data", str(tiny_shop), "--out", str(tmp_path / "reports"),
                 "--journal", str(tmp_path / "j")])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot run: week 2026-W52 is after" in err


def test_a_database_url_with_a_password_is_refused_before_anything_is_written(tmp_path, capsys):
    from playbook.data.url_secrets import PASSWORD_ENV
    from playbook.run.weekly import main

    code = main(["--week", "2026-W46", "--data", "postgresql://ana:Hunter2pw@127.0.0.1:1/shop",
                 "--out", str(tmp_path / "reports"), "--journal", str(tmp_path / "j")])
    err = capsys.readouterr().err
    assert code == 2 and PASSWORD_ENV in err and "Hunter2pw" not in err
    assert not (tmp_path / "reports").exists()


def test_a_failing_step_of_a_parallel_run_stops_the_others_and_leaves_the_previous_report(tiny_shop, tmp_path):
    """Steps 1, 2 and 4 read nothing from each other and run at once: step 2 fails while 1 and 4 run."""
    import os
    import time

    import psutil

    out = tmp_path / "reports"
    report = run_week("2026-W46", tiny_shop, out, journal=tmp_path / "j",
                      notebooks=[make_notebook(tmp_path / "01_ok.ipynb", WRITE_SUMMARY)])
    before = {p.relative_to(report): p.read_bytes() for p in report.rglob("*") if p.is_file()}
    cycle, pids = tmp_path / "cycle", tmp_path / "pids"
    cycle.mkdir()
    pids.mkdir()
    running = ("import os, pathlib, time\n"
               "pathlib.Path({pids!r}, {stem!r}).write_text(str(os.getpid()))\n"
               "time.sleep(600)")
    notebooks = [make_notebook(cycle / f"{stem}.ipynb", running.format(pids=str(pids), stem=stem))
                 for stem in ("01_baseline", "03_lever_design", "04_comparison")]
    # step 2 fails once steps 1 and 4 are running (and step 3, which reads step 2, has not started)
    failing = ("import pathlib, time\n"
               f"while len(list(pathlib.Path({str(pids)!r}).iterdir())) < 2:\n"
               "    time.sleep(0.1)\n"
               "raise ValueError('planted failure')")
    notebooks.insert(1, make_notebook(cycle / "02_weak_cohort.ipynb", failing))
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(RunError, match=r"02_weak_cohort.ipynb failed at cell .*ValueError: planted failure"):
        run_week("2026-W46", tiny_shop, out, journal=tmp_path / "j", notebooks=notebooks, jobs=3, timeout=300,
                 log=lines.append)
    assert time.monotonic() - started < 200  # the sleeping notebooks were stopped, not waited for
    assert sorted(p.name for p in pids.iterdir()) == ["01_baseline", "04_comparison"]
    kernels = [int(p.read_text()) for p in pids.iterdir()]
    assert not [pid for pid in kernels if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not [c for c in psutil.Process(os.getpid()).children(recursive=True)
                if "ipykernel" in " ".join(c.cmdline())]
    steps = [line for line in lines if line.startswith("[")]
    assert steps[:3] == ["[1/4] 01_baseline ...", "[2/4] 02_weak_cohort ...", "[4/4] 04_comparison ..."]
    assert steps[3].startswith("[2/4] 02_weak_cohort FAILED (the failed notebook and the error are in ")
    assert steps[4:] == ["[1/4] 01_baseline stopped: 02_weak_cohort failed",
                         "[4/4] 04_comparison stopped: 02_weak_cohort failed"]
    after = {p.relative_to(report): p.read_bytes() for p in report.rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in out.iterdir() if p.name.startswith(".2026-W46.") and not p.name.endswith(".lock")]
    failed = out / "2026-W46.failed"
    assert [p.name for p in failed.glob("*.ipynb")] == ["02_weak_cohort.ipynb"]
    assert "02_weak_cohort.ipynb failed at cell" in (failed / "error.txt").read_text()
