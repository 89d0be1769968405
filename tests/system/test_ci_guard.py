"""CI fails when a suite that needs root, loop devices or systemd was skipped (.ci/junit_guard.py)."""

import ast
import importlib.util
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUARD = REPO / ".ci/junit_guard.py"

SNAPSHOT = "tests.system.snapshot.test_group_snapshot"
SCHEDULE_TEST = "tests.system.drill.test_drill_schedule.test_systemd_runs_the_drill_service_on_a_real_systemd_host"


@pytest.fixture(scope="module")
def guard():
    spec = importlib.util.spec_from_file_location("junit_guard", GUARD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _testcase(address: str, skipped: str | None = None, kind: str = "pytest.skip") -> str:
    classname, name = address.rsplit(".", 1)
    body = f'<skipped type="{kind}" message="{skipped}"/>' if skipped is not None else ""
    return f'<testcase classname="{classname}" name="{name}" time="0.1">{body}</testcase>'


def _report(*testcases: str) -> ET.Element:
    return ET.fromstring('<testsuites><testsuite name="pytest" tests="%d">%s</testsuite></testsuites>'
                         % (len(testcases), "".join(testcases)))


def _all_guarded_ran(guard, *extra: str) -> ET.Element:
    """A report in which every guarded suite ran one test, plus the given test cases."""
    return _report(*(_testcase(entry if "test_systemd" in entry else entry + ".test_ok")
                     for entry in guard.GUARDED), *extra)


def test_a_clean_run_passes(guard):
    assert guard.problems(_all_guarded_ran(guard, _testcase("tests.system.s3.test_s3_provision.test_bucket"))) == []


def test_skips_outside_the_guarded_suites_pass(guard):
    report = _all_guarded_ran(guard, _testcase("tests.system.s3.test_s3_provision.test_bucket", "could not import 'boto3'"),
                              _testcase("tests.system.drill.test_drill_schedule.test_cron_entry", "restic is not installed"))
    assert guard.problems(report) == []


def test_a_skipped_snapshot_test_fails_naming_it(guard):
    report = _all_guarded_ran(guard, _testcase(SNAPSHOT + ".test_group[pg]", "losetup cannot attach a loop device here"))
    (problem,) = guard.problems(report)
    assert SNAPSHOT + ".test_group[pg]" in problem
    assert "loop devices" in problem and "losetup cannot attach a loop device here" in problem


def test_a_module_skipped_at_collection_fails(guard):
    # pytest writes a module skipped while collected with an empty classname and its path as name.
    report = _all_guarded_ran(guard, '<testcase classname="" name="tests.system.consistency.test_fsfreeze">'
                                     '<skipped type="pytest.skip" message="not root"/></testcase>')
    (problem,) = guard.problems(report)
    assert "tests.system.consistency.test_fsfreeze" in problem


def test_the_systemd_host_skip_fails_wherever_it_is_used(guard):
    report = _all_guarded_ran(guard, _testcase(SCHEDULE_TEST, "systemd_host needs root (network namespaces, nspawn)"),
                              _testcase("tests.system.apply.test_new_suite.test_timer", "systemd_host: no user namespaces"))
    problems = guard.problems(report)
    assert len(problems) == 2
    assert SCHEDULE_TEST in problems[0] and "tests.system.apply.test_new_suite.test_timer" in problems[1]


def test_expected_failures_are_not_skips(guard):
    assert guard.problems(_all_guarded_ran(guard, _testcase(SNAPSHOT + ".test_known_bug", "bug 12", "pytest.xfail"))) == []


def test_a_guarded_suite_missing_from_the_report_fails(guard):
    report = _report(*(_testcase(entry + ".test_ok") for entry in guard.GUARDED if entry != "tests.system.consistency"))
    problems = guard.problems(report)
    assert any(p.startswith("missing tests.system.consistency") for p in problems), problems


def test_an_empty_report_fails(guard):
    assert guard.problems(_report()) == ["no test ran"]


def test_guarded_entries_name_tests_that_exist(guard):
    for entry in guard.GUARDED:
        parts = entry.split(".")
        for cut in range(len(parts), 0, -1):
            path = REPO.joinpath(*parts[:cut])
            if path.is_dir() or path.with_suffix(".py").is_file():
                break
        else:
            pytest.fail(f"{entry}: no such test directory or file")
        rest = parts[cut:]
        if rest:
            tree = ast.parse(path.with_suffix(".py").read_text())
            names = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            assert rest[0] in names, f"{entry}: no {rest[0]} in {path.with_suffix('.py')}"


def test_every_test_of_the_systemd_host_is_guarded(guard):
    """A new test on the nspawn host must be guarded too (the skip message also catches it)."""
    for path in sorted((REPO / "tests/system").rglob("test_*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") \
                    and "systemd_host" in [arg.arg for arg in node.args.args]:
                address = f"{module}.{node.name}"
                assert any(guard._covered(address, entry) for entry in guard.GUARDED), address


def test_real_pytest_report_of_a_skipping_fixture_fails_ci(tmp_path):
    """The guard reads what pytest really writes: fixture skips and module skips alike."""
    suite = tmp_path / "tests/system/snapshot"
    suite.mkdir(parents=True)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_fixture_skip.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef btrfs():\n    pytest.skip('not root')\n\n"
        "def test_snapshot(btrfs):\n    pass\n")
    (suite / "test_module_skip.py").write_text("import pytest\npytest.skip('no loop device', allow_module_level=True)\n")
    junit = tmp_path / "pytest.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", "tests"],
                   cwd=tmp_path, capture_output=True, check=False, timeout=120)
    result = subprocess.run([sys.executable, str(GUARD), str(junit)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "tests.system.snapshot.test_fixture_skip.test_snapshot (needs btrfs on loop devices (root)): not root" in result.stderr
    assert "tests.system.snapshot.test_module_skip" in result.stderr and "no loop device" in result.stderr
    assert "missing tests.system.consistency" in result.stderr
