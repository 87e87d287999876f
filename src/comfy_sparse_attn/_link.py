"""setup_link: stage a module file inside the installed ComfyUI ``comfy`` package.

``setup_link(source, comfy_relative="sparse.py") -> bool`` puts a symlink to
``source`` at ``<comfy package dir>/<comfy_relative>`` so that, for example,
``import comfy.sparse`` works before ComfyUI ships that module, and steps aside
once it does.  Returns True iff it created or repaired a link on disk.

The file-system work is C (``csrc/link``): this module only finds the ``comfy``
directory through the import system, calls ``_C``, logs what happened, and
does the in-process fallback.  By target state:

=====================================  ==================================================
absent                                 symlink to the resolved source, made under a temp
                                       name and renamed into place; True
real file                              left alone (ComfyUI ships it); False
symlink to the same source             left alone; False
dangling symlink / symlink elsewhere   replaced atomically, the old target logged; True
directory                              left alone, warning; False (not an error: a
                                       package ``comfy/<name>/`` already answers the import)
``comfy`` not importable               warning; False
source missing                         FileNotFoundError naming it (IsADirectoryError
                                       for a directory)
``comfy_relative`` absolute, with      ValueError, nothing touched
``..``, or escaping the comfy dir
(also through a symlinked parent)
parent directory of a nested path      FileNotFoundError: directories are never created
missing (``ldm/`` for "ldm/x.py")      (a missing ``ldm/`` means another ComfyUI layout)
links not permitted (WinError 1314,    ``comfy.<name>`` loaded from source and registered
read-only install)                     in ``sys.modules`` and as an attribute of its
                                       parent package (imported if needed); warning;
                                       False (nothing on disk)
=====================================  ==================================================

Argument errors are raised even when ComfyUI is not importable, so a mistake
shows up in a node's own tests.  If the ComfyUI tree is a git checkout the
staged path is added to ``.git/info/exclude`` (git overwrites ignored files on
``git pull``, but refuses untracked ones).

Finding ``comfy``: ComfyUI's ``comfy`` may be a namespace package
(``comfy.__file__`` is None), so the directory comes from
``importlib.util.find_spec("comfy").submodule_search_locations`` (or the
``__path__`` of an already imported ``comfy``).  No ``comfy`` submodule is
imported.  When a namespace package spans several directories, the one
holding ``model_management.py`` (ComfyUI's own) wins, else the first.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import os
import sys

log = logging.getLogger("comfy_sparse_attn")

# csa_link_result (include/csa/csa.h)
LINK_CREATED = 1
LINK_REPLACED = 2
LINK_SKIP_NATIVE = 3
LINK_SKIP_SAME = 4
LINK_SKIP_DIR = 5
LINK_NOT_PERMITTED = 6

# csa_link_git
_GIT_ADDED = 1
_GIT_PRESENT = 2
_GIT_FAILED = 3

__all__ = ["setup_link", "find_comfy_dir"]


def find_comfy_dir():
    """``(directory, None)`` of the importable ``comfy`` package, or
    ``(None, reason)``.  Imports nothing."""
    mod = sys.modules.get("comfy")
    if mod is not None:
        locations = getattr(mod, "__path__", None)
        if locations is None:
            return None, "the imported 'comfy' (%r) is a module, not ComfyUI's package" % (
                getattr(mod, "__file__", None),)
    else:
        try:
            spec = importlib.util.find_spec("comfy")
        except (ImportError, ValueError) as exc:
            return None, "looking up 'comfy' failed: %s" % (exc,)
        if spec is None:
            return None, "no 'comfy' package is importable (is this running inside ComfyUI?)"
        locations = spec.submodule_search_locations
        if locations is None:
            return None, "'comfy' resolves to the module %r, not ComfyUI's package" % (
                spec.origin,)
    dirs = [os.fspath(p) for p in list(locations) if os.path.isdir(p)]
    if not dirs:
        return None, "the 'comfy' package has no directory on disk"
    for d in dirs:
        if os.path.isfile(os.path.join(d, "model_management.py")):
            return d, None
    return dirs[0], None


def _module_name(comfy_relative):
    """"ldm/sparse.py" -> "comfy.ldm.sparse"; None if it names no module file."""
    parts = comfy_relative.replace("\\", "/").split("/")
    last = parts[-1]
    for suffix in sorted(importlib.machinery.all_suffixes(), key=len, reverse=True):
        if last.endswith(suffix) and len(last) > len(suffix):
            parts[-1] = last[: -len(suffix)]
            return ".".join(["comfy"] + parts)
    return None


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _alias_in_process(source, modname):
    """Loads source as ``modname`` and registers it, so ``import comfy.x`` finds
    it without a file in the comfy directory."""
    existing = sys.modules.get(modname)
    origin = getattr(getattr(existing, "__spec__", None), "origin", None)
    if existing is not None and origin and _same_file(origin, source):
        module = existing
    else:
        spec = importlib.util.spec_from_file_location(modname, source)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load %s as module %s" % (source, modname))
        module = importlib.util.module_from_spec(spec)
        # Registered before running, as the import system does, so the module
        # can import itself (and circular imports resolve).
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            if sys.modules.get(modname) is module:
                del sys.modules[modname]
            raise
    # `import comfy.ldm.sparse` finds the module in sys.modules without
    # importing its parents, and then `comfy.ldm.sparse` is attribute access:
    # import the parent packages (what that import statement needs anyway;
    # ComfyUI's are namespace packages, so this runs no code) and bind the
    # module as an attribute of its parent.
    parent_name, _, child = modname.rpartition(".")
    parent = importlib.import_module(parent_name)
    setattr(parent, child, module)
    return module


def _log_git(info, where):
    status = info.get("git_exclude", 0)
    if status == _GIT_ADDED:
        log.info("setup_link: listed %s in %s so ComfyUI's `git pull` can replace it",
                 where, info["git_path"])
    elif status == _GIT_FAILED:
        log.warning("setup_link: could not list %s in git's exclude file (%s); a later "
                    "`git pull` that adds this file upstream may stop with 'untracked working "
                    "tree file would be overwritten': delete %s then", where,
                    info.get("git_note"), where)


def setup_link(source, comfy_relative="sparse.py"):
    """Stage ``source`` at ``<comfy package dir>/<comfy_relative>``; True iff a link was
    created or repaired.  See the module docstring for every case."""
    source = os.fspath(source)
    comfy_relative = os.fspath(comfy_relative)
    from . import _C

    # Argument errors first (comfy_dir None: check only), ComfyUI or not.
    _C.setup_link_ex(source, None, comfy_relative)

    comfy_dir, why = find_comfy_dir()
    if comfy_dir is None:
        log.warning("setup_link: not staging comfy/%s: %s", comfy_relative, why)
        return False

    info = _C.setup_link_ex(source, comfy_dir, comfy_relative)
    result = info["result"]
    target, src = info["target"], info["source"]
    if result == LINK_CREATED:
        log.info("setup_link: linked %s -> %s", target, src)
        _log_git(info, target)
        return True
    if result == LINK_REPLACED:
        prev = info.get("previous") or "?"
        prev_abs = os.path.join(os.path.dirname(target), prev)
        if os.path.exists(prev_abs):
            log.warning("setup_link: replaced %s, which linked to %s (another installation?), "
                        "with a link to %s", target, prev, src)
        else:
            log.info("setup_link: repaired %s (dangling link to %s) -> %s", target, prev, src)
        _log_git(info, target)
        return True
    if result == LINK_SKIP_SAME:
        log.debug("setup_link: %s already links to %s", target, src)
        _log_git(info, target)
        return False
    if result == LINK_SKIP_NATIVE:
        log.info("setup_link: %s is a real file (ComfyUI ships it); using it, not %s",
                 target, src)
        return False
    if result == LINK_SKIP_DIR:
        log.warning("setup_link: %s is a directory; leaving it alone and not staging %s",
                    target, src)
        return False
    if result == LINK_NOT_PERMITTED:
        modname = _module_name(comfy_relative)
        if modname is None:
            log.warning("setup_link: cannot create links in %s (read-only install, or Windows "
                        "without Developer Mode / symlink privilege), and %s is not a Python "
                        "module that could be loaded in-process instead", comfy_dir,
                        comfy_relative)
            return False
        _alias_in_process(src, modname)
        log.warning("setup_link: cannot create links in %s (read-only install, or Windows "
                    "without Developer Mode / symlink privilege); loaded %s as %s for this "
                    "process only", comfy_dir, src, modname)
        return False
    raise RuntimeError("setup_link: unexpected result %r from the C core" % (result,))
