import subprocess

from storage_scaling import paths, provenance


def test_code_version_names_the_checked_out_commit():
    provenance.code_version.cache_clear()
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.repo_root(),
                          capture_output=True, text=True)
    if head.returncode == 0:
        assert provenance.code_version().split("-")[0] == head.stdout.strip()


def test_code_version_override_for_hosts_without_git(monkeypatch):
    provenance.code_version.cache_clear()
    monkeypatch.setenv("STORAGE_SCALING_CODE_VERSION", "abc123")
    assert provenance.code_version() == "abc123"
    provenance.code_version.cache_clear()


def test_stamp_has_the_provenance_columns():
    assert set(provenance.stamp()) == {"code_version", "device", "finished_at"}
    assert provenance.package_versions()["numpy"] != "not installed"
