import subprocess

from storage_scaling import paths, provenance


def _git(folder, *args):
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()


def test_code_version_names_the_commit_and_marks_code_changes(tmp_path, monkeypatch):
    """In a repository of our own: the commit, then -dirty only when code (not prose) changed."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("prose\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    commit = _git(tmp_path, "rev-parse", "--short=12", "HEAD")
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    monkeypatch.delenv("STORAGE_SCALING_CODE_VERSION", raising=False)
    provenance.code_version.cache_clear()
    assert provenance.code_version() == commit
    (tmp_path / "README.md").write_text("more prose\n")
    provenance.code_version.cache_clear()
    assert provenance.code_version() == commit  # prose does not change a result
    (tmp_path / "src" / "x.py").write_text("x = 2\n")
    provenance.code_version.cache_clear()
    assert provenance.code_version() == commit + "-dirty"
    provenance.code_version.cache_clear()


def test_code_version_without_git_is_the_package_version(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)  # not a repository: git fails
    monkeypatch.delenv("STORAGE_SCALING_CODE_VERSION", raising=False)
    provenance.code_version.cache_clear()
    assert provenance.code_version().startswith("v0.")
    provenance.code_version.cache_clear()


def test_code_version_override_for_hosts_without_git(monkeypatch):
    provenance.code_version.cache_clear()
    monkeypatch.setenv("STORAGE_SCALING_CODE_VERSION", "abc123")
    assert provenance.code_version() == "abc123"
    provenance.code_version.cache_clear()


def test_stamp_has_the_provenance_columns():
    assert set(provenance.stamp()) == {"code_version", "device", "finished_at"}
    assert provenance.package_versions()["numpy"] != "not installed"
