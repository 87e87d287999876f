"""setup_link end to end: a real ``comfy`` directory made per test, found through
the import system of a fresh interpreter (a subprocess with that directory on
PYTHONPATH), every case of the table, 12 racing processes, a read-only install
(read-only bind mount in a private mount namespace), and real git repositories
(bare upstream + clone: the clone's ``git pull`` must succeed when upstream
adds the real file; a control run shows it fails without our exclude line).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

import comfy_sparse_attn

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(comfy_sparse_attn.__file__)))

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX layout checks")

# Runs in the child: configure logging to stderr, call setup_link, report as JSON.
_CHILD = textwrap.dedent("""
    import json, logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(name)s %(levelname)s %(message)s")
    from comfy_sparse_attn import setup_link
    args = json.loads(sys.argv[1])
    out = {}
    try:
        out["result"] = setup_link(*args)
    except Exception as exc:
        out["error"] = type(exc).__name__
        out["message"] = str(exc)
    extra = sys.argv[2] if len(sys.argv) > 2 else ""
    if extra:
        exec(extra, {"out": out})
    print(json.dumps(out))
""")


class Tree:
    """tmp/ComfyUI/comfy (namespace package, no __init__.py) + tmp/pkg/sparse.py."""

    def __init__(self, root):
        self.root = str(root)
        self.comfyui = os.path.join(self.root, "ComfyUI")
        self.comfy = os.path.join(self.comfyui, "comfy")
        os.makedirs(os.path.join(self.comfy, "ldm"))
        self.write(os.path.join(self.comfy, "model_management.py"), "MM = 1\n")
        self.pkg = os.path.join(self.root, "pkg")
        os.makedirs(self.pkg)
        self.source = os.path.join(self.pkg, "sparse.py")
        self.write(self.source, "VALUE = 'staged'\n")
        self.target = os.path.join(self.comfy, "sparse.py")

    @staticmethod
    def write(path, text):
        with open(path, "w") as f:
            f.write(text)

    def env(self, with_comfy=True, extra_path=()):
        env = dict(os.environ)
        paths = list(extra_path) + ([self.comfyui] if with_comfy else []) + [PKG_PARENT]
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(paths + ([old] if old else []))
        return env

    def call(self, *args, with_comfy=True, extra_path=(), after="", prefix=()):
        cmd = list(prefix) + [sys.executable, "-c", _CHILD, json.dumps(list(args)), after]
        proc = subprocess.run(cmd, cwd=self.root, env=self.env(with_comfy, extra_path),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        out["log"] = proc.stderr
        return out

    def temps(self, d=None):
        return [n for n in os.listdir(d or self.comfy) if ".csa-tmp" in n]

    def import_value(self, modname="comfy.sparse"):
        code = "import importlib; print(importlib.import_module(%r).VALUE)" % modname
        proc = subprocess.run([sys.executable, "-c", code], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path)


def _needs_ex():
    from comfy_sparse_attn import _C
    if not hasattr(_C, "setup_link_ex"):
        pytest.fail("_C.setup_link_ex is not registered in the extension (csrc/python/module.c)")


def test_absent_creates_link_and_import_works(tree):
    out = tree.call(tree.source, "sparse.py")
    assert out["result"] is True, out
    assert os.path.islink(tree.target)
    assert os.readlink(tree.target) == os.path.realpath(tree.source)
    assert "comfy_sparse_attn INFO setup_link: linked %s -> %s" % (
        tree.target, tree.source) in out["log"]
    assert tree.temps() == []
    assert tree.import_value() == "staged"
    # Second call: same link, nothing done.
    again = tree.call(tree.source, "sparse.py")
    assert again["result"] is False, again
    assert os.readlink(tree.target) == os.path.realpath(tree.source)


def test_relative_and_pathlike_source_is_resolved(tree):
    rel = os.path.relpath(tree.source, tree.root)  # the child runs in tree.root
    out = tree.call(rel, "sparse.py")
    assert out["result"] is True, out
    assert os.readlink(tree.target) == os.path.realpath(tree.source)
    os.unlink(tree.target)
    after = "import pathlib; from comfy_sparse_attn import setup_link; " \
            "out['p'] = setup_link(pathlib.Path(%r), pathlib.PurePosixPath('sparse.py'))" % (
                tree.source)
    out = tree.call(tree.source, "x.py", after=after)
    assert out["p"] is True and os.path.islink(tree.target)


def test_real_file_is_left_alone(tree):
    tree.write(tree.target, "VALUE = 'native'\n")
    out = tree.call(tree.source, "sparse.py")
    assert out["result"] is False, out
    assert not os.path.islink(tree.target)
    assert open(tree.target).read() == "VALUE = 'native'\n"
    assert "real file" in out["log"]
    assert tree.import_value() == "native"


def test_same_source_via_other_spelling_is_left_alone(tree):
    os.symlink(os.path.relpath(tree.source, tree.comfy), tree.target)
    out = tree.call(tree.source, "sparse.py")
    assert out["result"] is False, out
    assert os.readlink(tree.target) == os.path.relpath(tree.source, tree.comfy)


def test_dangling_link_is_replaced_and_logged(tree):
    _needs_ex()
    gone = os.path.join(tree.root, "old_venv", "sparse.py")
    os.symlink(gone, tree.target)
    out = tree.call(tree.source, "sparse.py")
    assert out["result"] is True, out
    assert os.readlink(tree.target) == os.path.realpath(tree.source)
    assert "repaired %s (dangling link to %s)" % (tree.target, gone) in out["log"]
    assert tree.temps() == []
    assert tree.import_value() == "staged"


def test_link_elsewhere_is_replaced_with_warning(tree):
    _needs_ex()
    other = os.path.join(tree.root, "other.py")
    tree.write(other, "VALUE = 'other'\n")
    os.symlink(other, tree.target)
    out = tree.call(tree.source, "sparse.py")
    assert out["result"] is True, out
    assert os.readlink(tree.target) == os.path.realpath(tree.source)
    assert "WARNING setup_link: replaced %s, which linked to %s" % (tree.target, other) \
        in out["log"]
    assert open(other).read() == "VALUE = 'other'\n"


def test_directory_is_left_alone_with_warning(tree):
    os.makedirs(tree.target)
    inner = os.path.join(tree.target, "keep.txt")
    tree.write(inner, "keep")
    out = tree.call(tree.source, "sparse.py")
    assert out["result"] is False, out
    assert "WARNING" in out["log"] and "is a directory" in out["log"]
    assert os.listdir(tree.target) == ["keep.txt"]


def test_comfy_not_importable_warns(tree):
    out = tree.call(tree.source, "sparse.py", with_comfy=False)
    assert out["result"] is False, out
    assert "WARNING setup_link: not staging comfy/sparse.py" in out["log"]
    assert not os.path.lexists(tree.target)


def test_argument_errors_raise_even_without_comfy(tree):
    _needs_ex()
    out = tree.call(tree.source, "../sparse.py", with_comfy=False)
    assert out["error"] == "ValueError" and ".." in out["message"], out
    out = tree.call(os.path.join(tree.root, "missing.py"), "sparse.py", with_comfy=False)
    assert out["error"] == "FileNotFoundError" and "missing.py" in out["message"], out


def test_comfy_as_plain_module_warns(tree, tmp_path):
    other = tmp_path / "plain"
    other.mkdir()
    (other / "comfy.py").write_text("X = 1\n")
    out = tree.call(tree.source, "sparse.py", with_comfy=False, extra_path=[str(other)])
    assert out["result"] is False and "not ComfyUI's package" in out["log"], out


def test_source_missing_or_directory(tree):
    missing = os.path.join(tree.root, "nowhere", "sparse.py")
    out = tree.call(missing, "sparse.py")
    assert out["error"] == "FileNotFoundError" and missing in out["message"], out
    out = tree.call(tree.pkg, "sparse.py")
    assert out["error"] == "IsADirectoryError", out
    assert sorted(os.listdir(tree.comfy)) == ["ldm", "model_management.py"]


@pytest.mark.parametrize("rel", ["/etc/sparse.py", "../sparse.py", "ldm/../../sparse.py",
                                 "./sparse.py", "C:\\sparse.py", "ldm//sparse.py", "",
                                 "sparse.py.", "nul.py", "a*b.py"])
def test_bad_relative_paths_touch_nothing(tree, rel):
    before = sorted(os.listdir(tree.root)), sorted(os.listdir(tree.comfy))
    out = tree.call(tree.source, rel)
    assert out["error"] == "ValueError", out
    assert "comfy_relative" in out["message"]
    assert (sorted(os.listdir(tree.root)), sorted(os.listdir(tree.comfy))) == before


def test_escape_through_symlinked_parent(tree):
    outside = os.path.join(tree.root, "outside")
    os.makedirs(outside)
    os.symlink(outside, os.path.join(tree.comfy, "evil"))
    out = tree.call(tree.source, "evil/sparse.py")
    assert out["error"] == "ValueError" and "escapes" in out["message"], out
    assert os.listdir(outside) == []
    os.symlink("..", os.path.join(tree.comfy, "up"))
    out = tree.call(tree.source, "up/sparse.py")
    assert out["error"] == "ValueError", out
    assert not os.path.lexists(os.path.join(tree.comfyui, "sparse.py"))


def test_nested_target(tree):
    out = tree.call(tree.source, "ldm/sparse.py")
    assert out["result"] is True, out
    assert os.readlink(os.path.join(tree.comfy, "ldm", "sparse.py")) == tree.source
    assert tree.import_value("comfy.ldm.sparse") == "staged"
    # A missing parent is an error; nothing is created.
    out = tree.call(tree.source, "newdir/sparse.py")
    assert out["error"] == "FileNotFoundError" and "newdir" in out["message"], out
    assert not os.path.exists(os.path.join(tree.comfy, "newdir"))


def test_namespace_portions_prefer_comfyui(tree, tmp_path):
    # A second 'comfy' portion earlier on sys.path (e.g. a stray custom-node
    # folder) must not be chosen over ComfyUI's own.
    stray = tmp_path / "stray"
    (stray / "comfy").mkdir(parents=True)
    out = tree.call(tree.source, "sparse.py", extra_path=[str(stray)])
    assert out["result"] is True, out
    assert os.path.islink(tree.target)
    assert os.listdir(stray / "comfy") == []


def test_regular_package_and_already_imported(tree):
    tree.write(os.path.join(tree.comfy, "__init__.py"), "IMPORTED = True\n")
    after = "import comfy, os; out['file'] = comfy.__file__"
    out = tree.call(tree.source, "sparse.py", after=after)
    assert out["result"] is True, out
    # comfy already imported (ComfyUI imports it before custom nodes): its
    # __path__ is used and no submodule gets imported by setup_link.
    os.unlink(tree.target)
    child = textwrap.dedent("""
        import sys, comfy
        from comfy_sparse_attn import setup_link
        before = set(sys.modules)
        r = setup_link(sys.argv[1], "sparse.py")
        new = sorted(m for m in set(sys.modules) - before if m.startswith("comfy."))
        print(r, new)
    """)
    proc = subprocess.run([sys.executable, "-c", child, tree.source], cwd=tree.root,
                          env=tree.env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "True []", proc.stdout + proc.stderr


def test_find_comfy_dir_imports_nothing(tree):
    child = ("import sys; from comfy_sparse_attn._link import find_comfy_dir; "
             "d, why = find_comfy_dir(); print(d); print('comfy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", child], cwd=tree.root, env=tree.env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == [tree.comfy, "False"], proc.stdout + proc.stderr


# ---- concurrency -------------------------------------------------------------------

_RACER = textwrap.dedent("""
    import os, sys, time
    from comfy_sparse_attn import setup_link
    from comfy_sparse_attn import _C  # loaded before the gate opens
    go = sys.argv[3]
    open(sys.argv[4], "w").close()  # ready
    while not os.path.exists(go):
        time.sleep(0.0005)
    print(setup_link(sys.argv[1], sys.argv[2]))
""")


@pytest.mark.parametrize("start", ["absent", "dangling"])
def test_twelve_processes_race(tree, start):
    for round_ in range(3):
        if os.path.lexists(tree.target):
            os.unlink(tree.target)
        if start == "dangling":
            os.symlink("/nonexistent/sparse.py", tree.target)
        go = os.path.join(tree.root, "go%d" % round_)
        ready = [os.path.join(tree.root, "ready%d_%d" % (round_, i)) for i in range(12)]
        procs = [subprocess.Popen([sys.executable, "-c", _RACER, tree.source, "sparse.py", go,
                                   ready[i]],
                                  cwd=tree.root, env=tree.env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for i in range(12)]
        deadline = time.monotonic() + 120
        while not all(os.path.exists(r) for r in ready):  # all 12 spinning on the gate
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [p.communicate() for p in procs if p.poll() is not None]
            time.sleep(0.01)
        open(go, "w").close()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(out.strip())
        assert set(results) <= {"True", "False"}, results
        if start == "absent":
            assert results.count("True") == 1, results  # exactly one creator
        else:
            assert results.count("True") >= 1, results
        assert os.path.islink(tree.target)
        assert os.readlink(tree.target) == os.path.realpath(tree.source)
        assert tree.temps() == []
    assert tree.import_value() == "staged"


# ---- read-only install -------------------------------------------------------------

def _unshare_prefix(tree):
    """A command prefix running the child with comfy/ read-only, or skip."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) not installed: cannot build a read-only bind mount")
    for flags in (["-m"], ["-rm"]):
        probe = subprocess.run(
            ["unshare"] + flags + ["sh", "-c", 'mount --bind -o ro "$0" "$0" && '
             '! touch "$0/.probe" 2>/dev/null', tree.comfy],
            capture_output=True, text=True)
        if probe.returncode == 0:
            return ["unshare"] + flags + ["sh", "-c", 'mount --bind -o ro "$0" "$0" && '
                                         'exec "$@"', tree.comfy]
    pytest.skip("unshare/mount not permitted here (%s)" % probe.stderr.strip())


def test_read_only_install_falls_back_in_process(tree):
    prefix = _unshare_prefix(tree)
    after = textwrap.dedent("""
        import sys, os
        import comfy.sparse
        import comfy.ldm.sparse
        from comfy.ldm import sparse as nested
        import comfy
        out["value"] = comfy.sparse.VALUE
        out["file"] = sys.modules["comfy.sparse"].__file__
        out["attr"] = comfy.sparse is sys.modules["comfy.sparse"]
        out["nested"] = comfy.ldm.sparse.VALUE + nested.VALUE
        out["again"] = __import__("comfy_sparse_attn").setup_link(out["file"], "sparse.py")
    """)
    # the child stages ldm/sparse.py too, before the checks run
    after = ("from comfy_sparse_attn import setup_link; "
             "out['ldm'] = setup_link(%r, 'ldm/sparse.py')\n" % tree.source) + after
    out = tree.call(tree.source, "sparse.py", prefix=prefix, after=after)
    assert out.get("error") is None, out
    assert out["result"] is False and out["ldm"] is False, out
    assert "cannot create links in %s" % tree.comfy in out["log"]
    assert "loaded %s as comfy.sparse for this process only" % tree.source in out["log"]
    assert out["value"] == "staged" and out["nested"] == "stagedstaged", out
    assert out["file"] == tree.source and out["attr"] is True, out
    assert out["again"] is False
    # Nothing was written (the mount is gone; the real directory is as before).
    assert sorted(os.listdir(tree.comfy)) == ["ldm", "model_management.py"]
    assert os.listdir(os.path.join(tree.comfy, "ldm")) == []


def test_read_only_with_stale_link_and_non_module(tree):
    prefix = _unshare_prefix(tree)
    os.symlink("/nonexistent/sparse.py", tree.target)
    data = os.path.join(tree.pkg, "table.json")
    tree.write(data, "{}")
    after = ("import comfy.sparse; out['value'] = comfy.sparse.VALUE; "
             "from comfy_sparse_attn import setup_link; out['json'] = setup_link(%r, "
             "'table.json')" % data)
    out = tree.call(tree.source, "sparse.py", prefix=prefix, after=after)
    assert out["result"] is False and out["value"] == "staged", out
    assert out["json"] is False and "not a Python module" in out["log"], out
    assert os.readlink(tree.target) == "/nonexistent/sparse.py"


# ---- git -----------------------------------------------------------------------------

def _git(cwd, *args, check=True):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
               GIT_CONFIG_NOSYSTEM="1", HOME=cwd, GIT_TERMINAL_PROMPT="0")
    proc = subprocess.run(["git", "-c", "init.defaultBranch=master", "-c",
                           "protocol.file.allow=always"] + list(args), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, "git %s: %s%s" % (" ".join(args), proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def git_repos(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = str(tmp_path)
    upstream = os.path.join(root, "upstream.git")
    _git(root, "init", "--bare", upstream)
    dev = os.path.join(root, "dev")
    _git(root, "clone", upstream, dev)
    for k, v in (("user.name", "dev"), ("user.email", "dev@example.com")):
        _git(dev, "config", k, v)
    os.makedirs(os.path.join(dev, "comfy"))
    Tree.write(os.path.join(dev, "comfy", "model_management.py"), "MM = 1\n")
    Tree.write(os.path.join(dev, "main.py"), "print('ComfyUI')\n")
    _git(dev, "add", ".")
    _git(dev, "commit", "-m", "ComfyUI without sparse.py")
    _git(dev, "push", "origin", "HEAD:master")
    user = os.path.join(root, "ComfyUI")
    _git(root, "clone", upstream, user)
    for k, v in (("user.name", "user"), ("user.email", "user@example.com")):
        _git(user, "config", k, v)
    src = os.path.join(root, "pkg")
    os.makedirs(src)
    Tree.write(os.path.join(src, "sparse.py"), "VALUE = 'staged'\n")
    return {"root": root, "dev": dev, "user": user, "source": os.path.join(src, "sparse.py")}


def _link_in(repos, checkout):
    child = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
             "from comfy_sparse_attn import setup_link; "
             "print(setup_link(sys.argv[1], 'sparse.py'))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([checkout, PKG_PARENT]))
    proc = subprocess.run([sys.executable, "-c", child, repos["source"]], cwd=repos["root"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


def _upstream_adds_sparse(repos):
    Tree.write(os.path.join(repos["dev"], "comfy", "sparse.py"), "VALUE = 'upstream'\n")
    _git(repos["dev"], "add", "comfy/sparse.py")
    _git(repos["dev"], "commit", "-m", "add comfy/sparse.py")
    _git(repos["dev"], "push", "origin", "HEAD:master")


def test_git_pull_succeeds_after_staging(git_repos):
    repos = git_repos
    user = repos["user"]
    target = os.path.join(user, "comfy", "sparse.py")
    result, log = _link_in(repos, user)
    assert result == "True", log
    assert os.path.islink(target)
    exclude = os.path.join(user, ".git", "info", "exclude")
    lines = open(exclude).read().splitlines()
    assert lines.count("/comfy/sparse.py") == 1, lines
    assert "listed" in log
    # git sees the link as ignored, not untracked.
    assert _git(user, "status", "--porcelain").stdout == ""
    assert _git(user, "check-ignore", "comfy/sparse.py").stdout.strip() == "comfy/sparse.py"
    # Second run: no duplicate line.
    os.unlink(target)
    assert _link_in(repos, user)[0] == "True"
    assert open(exclude).read().splitlines().count("/comfy/sparse.py") == 1

    _upstream_adds_sparse(repos)
    pull = _git(user, "pull", "--no-rebase", "origin", "master", check=False)
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert not os.path.islink(target)
    assert open(target).read() == "VALUE = 'upstream'\n"
    # Now ComfyUI ships it: setup_link steps aside and leaves it alone.
    result, log = _link_in(repos, user)
    assert result == "False", log
    assert open(target).read() == "VALUE = 'upstream'\n" and not os.path.islink(target)
    assert _git(user, "status", "--porcelain").stdout == ""


def test_git_pull_fails_without_exclude_control(git_repos):
    """Control: the same link *not* excluded blocks the pull, so the test above
    really depends on the exclude line."""
    repos = git_repos
    user = repos["user"]
    assert _link_in(repos, user)[0] == "True"
    exclude = os.path.join(user, ".git", "info", "exclude")
    with open(exclude) as f:
        kept = [ln for ln in f.read().splitlines() if ln != "/comfy/sparse.py"]
    with open(exclude, "w") as f:
        f.write("\n".join(kept) + "\n")
    assert "?? comfy/sparse.py" in _git(user, "status", "--porcelain").stdout
    _upstream_adds_sparse(repos)
    pull = _git(user, "pull", "--no-rebase", "origin", "master", check=False)
    assert pull.returncode != 0
    assert "would be overwritten" in pull.stdout + pull.stderr


def test_git_worktree_uses_common_exclude(git_repos):
    repos = git_repos
    wt = os.path.join(repos["root"], "wt")
    _git(repos["user"], "worktree", "add", wt)
    result, log = _link_in(repos, wt)
    assert result == "True", log
    assert _git(wt, "status", "--porcelain").stdout == ""
    assert "/comfy/sparse.py" in open(
        os.path.join(repos["user"], ".git", "info", "exclude")).read().splitlines()


def test_git_submodule_exclude(git_repos):
    repos = git_repos
    sup = os.path.join(repos["root"], "super")
    os.makedirs(sup)
    _git(sup, "init")
    for k, v in (("user.name", "s"), ("user.email", "s@example.com")):
        _git(sup, "config", k, v)
    _git(sup, "submodule", "add", os.path.join(repos["root"], "upstream.git"), "ComfyUI")
    sub = os.path.join(sup, "ComfyUI")
    assert os.path.isfile(os.path.join(sub, ".git"))  # "gitdir: ../.git/modules/ComfyUI"
    result, log = _link_in(repos, sub)
    assert result == "True", log
    assert _git(sub, "status", "--porcelain").stdout == ""
    # The superproject sees no untracked content in the submodule ("AM" would).
    status = _git(sup, "status", "--porcelain").stdout.splitlines()
    assert "A  ComfyUI" in status, status
