/*
 * link_binding.c — _C.setup_link_ex: csa_setup_link_ex with everything the
 * Python glue (_link.py) needs for its log line.
 *
 *   setup_link_ex(source, comfy_dir, comfy_relative) -> dict
 *     result       csa_link_result (0 when comfy_dir is None: check only)
 *     target       absolute target path ("" when check only)
 *     source       resolved absolute source
 *     previous     what a replaced link pointed to, or None
 *     git_exclude  csa_link_git
 *     git_path     the info/exclude file involved, or None
 *     git_note     why the exclude step failed, or None
 *
 * Paths go through PyUnicode_FSConverter, so str, bytes and os.PathLike all
 * work and undecodable POSIX names survive the round trip (surrogateescape).
 * Errors raise the exception the status table names, with csa_errmsg().
 */
#include <stdlib.h>

#include "link_binding.h"

#include "csa/csa.h"

static PyObject *csa__fs_str(const char *s) {
  if (s == NULL || s[0] == '\0')
    Py_RETURN_NONE;
  return PyUnicode_DecodeFSDefault(s);
}

/* FSConverter that also lets None through (comfy_dir = None). */
static int csa__fs_opt(PyObject *obj, void *out) {
  if (obj == Py_None) {
    *(PyObject **)out = NULL;
    return 1;
  }
  return PyUnicode_FSConverter(obj, out);
}

PyObject *csa__py_setup_link_ex(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"source", "comfy_dir", "comfy_relative", NULL};
  PyObject *src = NULL, *dir = NULL, *rel = NULL, *ret = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&O&:setup_link_ex", kwlist,
                                   PyUnicode_FSConverter, &src, csa__fs_opt, &dir,
                                   PyUnicode_FSConverter, &rel))
    goto done;
  csa_link_info *info = (csa_link_info *)malloc(sizeof *info);
  if (info == NULL) {
    PyErr_NoMemory();
    goto done;
  }
  const char *s = PyBytes_AsString(src), *r = PyBytes_AsString(rel);
  const char *d = dir ? PyBytes_AsString(dir) : NULL;
  if (s == NULL || r == NULL || (dir && d == NULL)) {
    free(info);
    goto done;
  }
  int st;
  /* Pure file-system work on copies of the arguments: the GIL can go. */
  Py_BEGIN_ALLOW_THREADS
  st = csa_setup_link_ex(s, d, r, info);
  Py_END_ALLOW_THREADS
  if (st != CSA_OK) {
    free(info);
    csa__py_raise(st);
    goto done;
  }
  PyObject *v[6] = {PyUnicode_DecodeFSDefault(info->target),
                    PyUnicode_DecodeFSDefault(info->source),
                    csa__fs_str(info->previous),
                    csa__fs_str(info->git_path),
                    csa__fs_str(info->git_note),
                    NULL};
  int ok = v[0] && v[1] && v[2] && v[3] && v[4];
  if (ok)
    ret = Py_BuildValue("{s:i,s:O,s:O,s:O,s:i,s:O,s:O}", "result", info->result, "target", v[0],
                        "source", v[1], "previous", v[2], "git_exclude", info->git_exclude,
                        "git_path", v[3], "git_note", v[4]);
  for (int i = 0; i < 5; i++)
    Py_XDECREF(v[i]);
  free(info);
done:
  Py_XDECREF(src);
  Py_XDECREF(dir);
  Py_XDECREF(rel);
  return ret;
}
