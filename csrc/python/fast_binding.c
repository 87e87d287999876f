/*
 * fast_binding.c — a repeated dispatch_varlen_attention call, done in C.
 *
 * dispatch (``_dispatch.py``) decides a call from facts only Python sees
 * (overrides, library versions, ComfyUI flags, autograd) and remembers the
 * decision under a key of every fact it read.  This file holds those
 * remembered decisions and, for a call whose key it has, runs the call
 * without entering Python: the tensors are read through torch's DLPack C
 * exchange table (no capsule, no allocation), the output is allocated by a
 * cached torch.empty, and the native kernel (CPU; CUDA: one launch that also
 * checks the values of cu_seqlens, csrc/cuda/cu_check.cuh) runs from here.  Anything unusual hands the call back to the full Python
 * path, which is the reference: every error and report is the full path's.
 *
 *   fast_call(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
 *             max_seqlen_kv, softmax_scale, causal, return_lse, backend,
 *             out, check_cu_seqlens, ctx)
 *     -> the result                  a remembered native call ran here
 *      | the remembered record       a remembered call whose backend runs
 *                                    in Python (dispatch's _Fast)
 *      | a key (PyCapsule)           no decision for this key yet: the
 *                                    full path decides and hands the key to
 *                                    fast_remember
 *      | FAST_SLOW                   take the full path (nothing to remember)
 *
 * ctx is dispatch's per-thread use_backend() state (None or a tuple): one
 * attribute read in Python, passed in because C cannot see threading.local.
 *
 * The key (csa__fast_key) holds every fact of dispatch's Python key:
 *   from the tensors: q's dtype (DLPack code / bits / lanes) and device, the
 *     devices of both cu_seqlens, H, D, H_kv, D_v, the rows class from B and
 *     T_q, whether cu_seqlens_q is cu_seqlens_kv, whether autograd records
 *     (some of q, k, v requires grad and grad mode is on);
 *   from the arguments: causal, return_lse, check_cu_seqlens (as truth
 *     values, which is all dispatch reads of them), backend= (None or str);
 *   overrides: ctx, the raw COMFY_SPARSE_ATTN_BACKEND / _EXACT values in
 *     os.environ's own mapping (read as dispatch reads them), ComfyUI's
 *     flags (comfy_flags()'s cached answer, or "not in ComfyUI").
 * The C facts are hashed and compared as bytes; the Python facts are
 * builtin objects compared by value (no Python code can run during a
 * lookup, so the table cannot change under it).
 *
 * Dispatch clears the table whenever a backend's failure is recorded or
 * cleared (fast_clear), as it did its dict; beyond CSA__FAST_MAX entries it
 * starts over.
 */
#include <stdint.h>
#include <string.h>

#include "core/dispatch.h"
#include "core/hash.h"
#include "cuda/loader.h"
#include "attn_params.h"
#include "dlpack.h"
#include "errors.h"

/* What a remembered entry does on a hit. */
enum {
  CSA__FAST_PY = 0,   /* return the record: the adapter runs in Python */
  CSA__FAST_CPU = 1,  /* native CPU kernel, here */
  CSA__FAST_CUDA = 2, /* native CUDA: the kernel, checking cu_seqlens itself, here */
  CSA__FAST_BUCKETS = 1024,
  CSA__FAST_MAX = 4096,
  CSA__FAST_NARGS = 14
};

/* The facts read from C-level values: hashed and compared as bytes (the
 * struct is zeroed before it is filled, so padding compares equal). */
typedef struct csa__fast_facts {
  csa__dl_dtype q_dtype;
  int32_t q_dev_type, q_dev_id;
  int32_t cuq_dev_type, cuq_dev_id, cukv_dev_type, cukv_dev_id;
  int64_t heads, head_dim, heads_kv, head_dim_v;
  int32_t rows; /* csa__dispatch_rows(B, T_q) */
  uint8_t causal, lse, check, same_cu, grad;
} csa__fast_facts;

/* The facts that are Python objects (strong references in a stored key,
 * borrowed in a probe): compared by value; NULL = absent (environment). */
enum { CSA__KEY_BACKEND, CSA__KEY_CTX, CSA__KEY_ENV_BACKEND, CSA__KEY_ENV_EXACT,
       CSA__KEY_COMFY, CSA__KEY_NOBJ };

typedef struct csa__fast_key {
  csa__fast_facts facts;
  PyObject *obj[CSA__KEY_NOBJ];
  uint64_t hash; /* of facts */
} csa__fast_key;

typedef struct csa__fast_entry {
  struct csa__fast_entry *next;
  csa__fast_key key;
  int kind;            /* CSA__FAST_* */
  PyObject *record;    /* dispatch's _Fast: returned (PY), or handed to on_failure */
  PyObject *choice;    /* the BackendChoice a run makes dispatch's _last */
  PyObject *adapter;   /* the backend's adapter module ... */
  PyObject *run_fn;    /* ... and its run when remembered (patched: full path) */
  PyObject *device;    /* torch.device of q (on_failure's argument) */
  PyObject *out_kw;    /* {"dtype": q.dtype, "device": q.device} for torch.empty */
  PyObject *lse_kw;    /* {"dtype": torch.float32, "device": q.device} */
  PyObject *flag_keep; /* CUDA: owner of the sanitizer's flag word */
  csa_tensor flag;     /* CUDA: the violation word, at its device address */
  const volatile int32_t *flag_host; /* CUDA: the same word, read on the host */
} csa__fast_entry;

/* Everything fast_init binds once (borrowed from torch and dispatch). */
static struct {
  int ready;
  PyObject *slow;                    /* FAST_SLOW */
  PyTypeObject *tensor_type;         /* torch.Tensor */
  const csa__dl_exchange_api *xapi;  /* torch's DLPack C table, or NULL */
  PyObject *xapi_owner;
  PyObject *to_dlpack;               /* exporter when there is no table */
  PyObject *empty;                   /* torch.empty */
  PyObject *num_threads;             /* torch.get_num_threads */
  PyObject *grad_enabled;            /* torch.is_grad_enabled */
  PyObject *raw_stream;              /* (index) -> current stream handle, no table */
  PyObject *dispatch_ns;             /* dispatch's globals: _last */
  PyObject *comfy_ns;                /* _comfy's globals: _cached */
  PyObject *comfy_flags;             /* _comfy.comfy_flags */
  PyObject *env;                     /* os.environ's mapping (dict) */
  PyObject *env_backend_key, *env_exact_key;
  PyObject *s_requires_grad, *s_run, *s_last, *s_cached, *s_cli_args;
  PyObject *s_failed; /* dispatch's _fast_failed(record, err, device), looked up when used */
} csa__fx;

static csa__fast_entry *csa__fast_table[CSA__FAST_BUCKETS];
static long csa__fast_count;
/* Calls served here, records handed to Python, misses (fast_stats). */
static unsigned long long csa__fast_n_run, csa__fast_n_record, csa__fast_n_miss;
/* Tests: the next n kernel runs here fail as a kernel failing on valid
 * input would (a RuntimeError), so the failure handling can be exercised. */
static int csa__fast_fail_next;

/* ------------------------------------------------------------------------ */
/* Keys                                                                       */
/* ------------------------------------------------------------------------ */

static uint64_t csa__fast_hash(const csa__fast_facts *f) {
  return csa__hash_bytes(f, sizeof *f);
}

/* Equal Python facts: the same object, or equal builtin values.  Only
 * builtins ever reach a key (csa__fast_key_make), so the comparison runs no
 * Python code and cannot fail. */
static int csa__fast_obj_eq(PyObject *a, PyObject *b) {
  if (a == b)
    return 1;
  if (a == NULL || b == NULL)
    return 0;
  const int eq = PyObject_RichCompareBool(a, b, Py_EQ);
  if (eq < 0) {
    PyErr_Clear();
    return 0;
  }
  return eq;
}

static int csa__fast_key_eq(const csa__fast_key *a, const csa__fast_key *b) {
  if (a->hash != b->hash || memcmp(&a->facts, &b->facts, sizeof a->facts) != 0)
    return 0;
  for (int i = 0; i < CSA__KEY_NOBJ; i++)
    if (!csa__fast_obj_eq(a->obj[i], b->obj[i]))
      return 0;
  return 1;
}

static void csa__fast_key_hold(csa__fast_key *k) {
  for (int i = 0; i < CSA__KEY_NOBJ; i++)
    Py_XINCREF(k->obj[i]);
}

static void csa__fast_key_drop(csa__fast_key *k) {
  for (int i = 0; i < CSA__KEY_NOBJ; i++)
    Py_CLEAR(k->obj[i]);
}

static csa__fast_entry *csa__fast_find(const csa__fast_key *k) {
  csa__fast_entry *e = csa__fast_table[k->hash % CSA__FAST_BUCKETS];
  for (; e != NULL; e = e->next)
    if (csa__fast_key_eq(&e->key, k))
      return e;
  return NULL;
}

static void csa__fast_entry_free(csa__fast_entry *e) {
  csa__fast_key_drop(&e->key);
  Py_XDECREF(e->record);
  Py_XDECREF(e->choice);
  Py_XDECREF(e->adapter);
  Py_XDECREF(e->run_fn);
  Py_XDECREF(e->device);
  Py_XDECREF(e->out_kw);
  Py_XDECREF(e->lse_kw);
  Py_XDECREF(e->flag_keep);
  PyMem_Free(e);
}

static void csa__fast_clear_all(void) {
  /* Unlink first, then free: freeing drops references, which may run
   * arbitrary code that calls back into this table. */
  csa__fast_entry *all = NULL;
  for (int b = 0; b < CSA__FAST_BUCKETS; b++) {
    csa__fast_entry *e = csa__fast_table[b];
    csa__fast_table[b] = NULL;
    while (e != NULL) {
      csa__fast_entry *next = e->next;
      e->next = all;
      all = e;
      e = next;
    }
  }
  csa__fast_count = 0;
  while (all != NULL) {
    csa__fast_entry *next = all->next;
    csa__fast_entry_free(all);
    all = next;
  }
}

/* ------------------------------------------------------------------------ */
/* Reading the tensors                                                        */
/* ------------------------------------------------------------------------ */

/* A view of torch tensor obj (raw DLPack dtype in *raw when given): through
 * the exchange table when torch has one, else a capsule from torch's C
 * exporter (kept in ka).  0, or -1 with an exception set (e.g. a meta
 * tensor): the caller takes the full path, which names the problem. */
static int csa__fast_view(PyObject *obj, csa_tensor *view, csa__dl_dtype *raw,
                          csa__py_keepalive *ka) {
  if (csa__fx.xapi != NULL) {
    csa__dl_tensor t;
    if (csa__fx.xapi->dltensor_from_py_object_no_sync((void *)obj, &t) != 0)
      return -1;
    if (raw != NULL)
      *raw = t.dtype;
    return csa__py_view_from_dl(&t, "tensor", view);
  }
  PyObject *cap = PyObject_CallFunctionObjArgs(csa__fx.to_dlpack, obj, NULL);
  if (cap == NULL)
    return -1;
  PyObject *keep = NULL;
  const int st = csa__py_tensor_view(cap, "tensor", 0, view, &keep);
  Py_DECREF(cap);
  if (st < 0)
    return -1;
  ka->keep[ka->n++] = keep;
  if (raw != NULL) {
    /* the capsule's descriptor again, for the raw dtype */
    const csa__dl_tensor *t = NULL;
    if (PyCapsule_IsValid(keep, "dltensor_versioned"))
      t = &((csa__dl_managed_versioned *)PyCapsule_GetPointer(keep, "dltensor_versioned"))
               ->dl_tensor;
    else
      t = &((csa__dl_managed *)PyCapsule_GetPointer(keep, "dltensor"))->dl_tensor;
    *raw = t->dtype;
  }
  return 0;
}

/* obj.requires_grad as 0 / 1, or -1 with an exception set. */
static int csa__fast_requires_grad(PyObject *obj) {
  PyObject *r = PyObject_GetAttr(obj, csa__fx.s_requires_grad);
  if (r == NULL)
    return -1;
  const int t = PyObject_IsTrue(r);
  Py_DECREF(r);
  return t;
}

/* The value of a key's Python fact: None or an exact builtin, else NULL
 * with *bad set (the full path handles such a call). */
static PyObject *csa__fast_builtin(PyObject *o, int *bad) {
  if (o == Py_None || PyUnicode_CheckExact(o) || PyBytes_CheckExact(o) || PyTuple_CheckExact(o))
    return o;
  *bad = 1;
  return NULL;
}

/* ComfyUI's flags as dispatch keys them: comfy_flags()'s cached answer;
 * before there is one, None while comfy.cli_args is not imported (the
 * answer is then "no flags", what comfy_flags() returns), else its fresh
 * answer (new reference in *owned).  NULL with an exception on failure. */
static PyObject *csa__fast_comfy(PyObject **owned) {
  *owned = NULL;
  PyObject *cached = PyDict_GetItemWithError(csa__fx.comfy_ns, csa__fx.s_cached);
  if (cached != NULL && cached != Py_None)
    return cached;
  if (PyErr_Occurred())
    return NULL;
  PyObject *mods = PyImport_GetModuleDict();
  PyObject *cli = PyDict_GetItemWithError(mods, csa__fx.s_cli_args);
  if (cli == NULL) {
    if (PyErr_Occurred())
      return NULL;
    return Py_None;
  }
  *owned = PyObject_CallNoArgs(csa__fx.comfy_flags);
  return *owned;
}

/* The five arguments dispatch reads tensors from, and out (or NULL). */
typedef struct csa__fast_args {
  PyObject *q, *k, *v, *cu_q, *cu_kv, *out;
} csa__fast_args;

/* Views of the call's tensors and its key.  0; 1: not a call this path
 * takes (non-tensors, wrong ranks, unusual argument types: the full path
 * decides and reports, and remembers nothing); -1 with an exception. */
static int csa__fast_key_make(const csa__fast_args *a, PyObject *const *args,
                              csa_attn_params *p, csa__py_keepalive *ka, csa__fast_key *key,
                              PyObject **comfy_owned) {
  PyTypeObject *T = csa__fx.tensor_type;
  PyObject *ts[5] = {a->q, a->k, a->v, a->cu_q, a->cu_kv};
  for (int i = 0; i < 5; i++)
    if (!PyObject_TypeCheck(ts[i], T))
      return 1;
  if (a->out != NULL && !PyObject_TypeCheck(a->out, T))
    return 1;

  csa__fast_facts *f = &key->facts;
  memset(key, 0, sizeof *key);
  if (csa__fast_view(a->q, &p->q, &f->q_dtype, ka) < 0 ||
      csa__fast_view(a->k, &p->k, NULL, ka) < 0 || csa__fast_view(a->v, &p->v, NULL, ka) < 0 ||
      csa__fast_view(a->cu_q, &p->cu_seqlens_q, NULL, ka) < 0)
    goto decline;
  if (a->cu_kv == a->cu_q)
    p->cu_seqlens_kv = p->cu_seqlens_q;
  else if (csa__fast_view(a->cu_kv, &p->cu_seqlens_kv, NULL, ka) < 0)
    goto decline;
  if (a->out != NULL && csa__fast_view(a->out, &p->out, NULL, ka) < 0)
    goto decline;
  /* dispatch unpacks q.shape into three, reads k.shape[1], v.shape[2] and
   * cu_seqlens_q.shape[0]: other ranks go to the full path */
  if (p->q.ndim != 3 || p->k.ndim < 2 || p->v.ndim < 3 || p->cu_seqlens_q.ndim < 1)
    return 1;

  f->q_dev_type = p->q.device_type;
  f->q_dev_id = p->q.device_id;
  f->cuq_dev_type = p->cu_seqlens_q.device_type;
  f->cuq_dev_id = p->cu_seqlens_q.device_id;
  f->cukv_dev_type = p->cu_seqlens_kv.device_type;
  f->cukv_dev_id = p->cu_seqlens_kv.device_id;
  f->heads = p->q.shape[1];
  f->head_dim = p->q.shape[2];
  f->heads_kv = p->k.shape[1];
  f->head_dim_v = p->v.shape[2];
  f->rows = csa__dispatch_rows(p->cu_seqlens_q.shape[0] - 1, p->q.shape[0]);
  f->same_cu = a->cu_q == a->cu_kv;
  int t;
  if ((t = PyObject_IsTrue(args[8])) < 0)
    goto decline;
  f->causal = (uint8_t)t;
  if ((t = PyObject_IsTrue(args[9])) < 0)
    goto decline;
  f->lse = (uint8_t)t;
  if ((t = PyObject_IsTrue(args[12])) < 0)
    goto decline;
  f->check = (uint8_t)t;
  int grad = 0;
  for (int i = 0; i < 3 && !grad; i++) {
    if ((t = csa__fast_requires_grad(ts[i])) < 0)
      goto decline;
    grad = t;
  }
  if (grad) {
    PyObject *on = PyObject_CallNoArgs(csa__fx.grad_enabled);
    if (on == NULL)
      return -1;
    grad = PyObject_IsTrue(on);
    Py_DECREF(on);
    if (grad < 0)
      return -1;
  }
  f->grad = (uint8_t)grad;

  /* The Python facts, borrowed: nothing from here to the lookup runs Python
   * code (comfy_flags(), which may, is asked first), so they stay alive. */
  int bad = 0;
  PyObject *comfy = csa__fast_comfy(comfy_owned);
  if (comfy == NULL)
    return -1;
  key->obj[CSA__KEY_COMFY] = csa__fast_builtin(comfy, &bad);
  key->obj[CSA__KEY_BACKEND] = csa__fast_builtin(args[10], &bad);
  key->obj[CSA__KEY_CTX] = csa__fast_builtin(args[13], &bad);
  if (bad)
    return 1;
  PyObject *env_b = PyDict_GetItemWithError(csa__fx.env, csa__fx.env_backend_key);
  if (env_b == NULL && PyErr_Occurred())
    return -1;
  PyObject *env_e = PyDict_GetItemWithError(csa__fx.env, csa__fx.env_exact_key);
  if (env_e == NULL && PyErr_Occurred())
    return -1;
  key->obj[CSA__KEY_ENV_BACKEND] = env_b != NULL ? csa__fast_builtin(env_b, &bad) : NULL;
  key->obj[CSA__KEY_ENV_EXACT] = env_e != NULL ? csa__fast_builtin(env_e, &bad) : NULL;
  if (bad)
    return 1;
  key->hash = csa__fast_hash(f);
  return 0;
decline:
  PyErr_Clear();
  return 1;
}

/* A stored copy of key (new references) in a capsule: the token the full
 * path hands back to fast_remember. */
static void csa__fast_token_free(PyObject *cap) {
  csa__fast_key *k = PyCapsule_GetPointer(cap, "csa.fast_key");
  if (k != NULL) {
    csa__fast_key_drop(k);
    PyMem_Free(k);
  }
}

static PyObject *csa__fast_token(const csa__fast_key *key) {
  csa__fast_key *k = PyMem_Malloc(sizeof *k);
  if (k == NULL)
    return PyErr_NoMemory();
  *k = *key;
  csa__fast_key_hold(k);
  PyObject *cap = PyCapsule_New(k, "csa.fast_key", csa__fast_token_free);
  if (cap == NULL) {
    csa__fast_key_drop(k);
    PyMem_Free(k);
  }
  return cap;
}

/* ------------------------------------------------------------------------ */
/* Running a remembered native call                                           */
/* ------------------------------------------------------------------------ */

/* What a hit needs of its entry, held for the call: the entry itself may
 * be freed meanwhile (other threads run while the kernel does; torch.empty
 * can run Python code through a torch function mode). */
typedef struct csa__fast_hit {
  int kind;
  PyObject *record, *choice, *adapter, *run_fn, *device, *out_kw, *lse_kw, *flag_keep;
  csa_tensor flag;
  const volatile int32_t *flag_host;
} csa__fast_hit;

static void csa__fast_hit_take(csa__fast_hit *h, const csa__fast_entry *e) {
  h->kind = e->kind;
  h->record = Py_NewRef(e->record);
  h->choice = Py_NewRef(e->choice);
  h->adapter = Py_NewRef(e->adapter);
  h->run_fn = Py_NewRef(e->run_fn);
  h->device = Py_NewRef(e->device);
  h->out_kw = Py_NewRef(e->out_kw);
  h->lse_kw = Py_NewRef(e->lse_kw);
  h->flag_keep = Py_XNewRef(e->flag_keep);
  h->flag = e->flag;
  h->flag_host = e->flag_host;
}

static void csa__fast_hit_drop(csa__fast_hit *h) {
  Py_XDECREF(h->record);
  Py_XDECREF(h->choice);
  Py_XDECREF(h->adapter);
  Py_XDECREF(h->run_fn);
  Py_XDECREF(h->device);
  Py_XDECREF(h->out_kw);
  Py_XDECREF(h->lse_kw);
  Py_XDECREF(h->flag_keep);
}

/* A new tensor from torch.empty(d0, d1[, d2], **kw), with its view. */
static PyObject *csa__fast_empty(int n, int64_t d0, int64_t d1, int64_t d2, PyObject *kw,
                                 csa_tensor *view, csa__py_keepalive *ka) {
  PyObject *shape = n == 3 ? Py_BuildValue("(LLL)", (long long)d0, (long long)d1, (long long)d2)
                           : Py_BuildValue("(LL)", (long long)d0, (long long)d1);
  if (shape == NULL)
    return NULL;
  PyObject *t = PyObject_Call(csa__fx.empty, shape, kw);
  Py_DECREF(shape);
  if (t == NULL)
    return NULL;
  if (csa__fast_view(t, view, NULL, ka) < 0) {
    Py_DECREF(t);
    return NULL;
  }
  return t;
}

/* max_seqlen as dispatch's int() reads a Python int; 1: anything else
 * (the full path converts or reports it). */
static int csa__fast_len_arg(PyObject *o, int64_t *v) {
  if (!PyLong_Check(o))
    return 1;
  long long x = PyLong_AsLongLong(o);
  if (x == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return 1;
  }
  *v = x;
  return 0;
}

/* softmax_scale as dispatch reads it: None -> 0 (1/sqrt(D)); a positive
 * float or int.  1: anything else (the full path raises for it). */
static int csa__fast_scale_arg(PyObject *o, float *scale) {
  if (o == Py_None) {
    *scale = 0.0f;
    return 0;
  }
  if (!PyFloat_Check(o) && !PyLong_Check(o))
    return 1;
  const double s = PyFloat_AsDouble(o);
  if (s == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    return 1;
  }
  if (!(s > 0.0))
    return 1;
  *scale = (float)s;
  return 0;
}

/* The current CUDA stream of device id (as torch sees it). */
static int csa__fast_stream(int32_t id, void **stream) {
  if (csa__fx.xapi != NULL)
    return csa__fx.xapi->current_work_stream(CSA_DEVICE_CUDA, id, stream);
  PyObject *i = PyLong_FromLong(id);
  if (i == NULL)
    return -1;
  PyObject *s = PyObject_CallFunctionObjArgs(csa__fx.raw_stream, i, NULL);
  Py_DECREF(i);
  if (s == NULL)
    return -1;
  *stream = PyLong_AsVoidPtr(s);
  Py_DECREF(s);
  return PyErr_Occurred() ? -1 : 0;
}

/* A native kernel failed on valid input: a ValueError / TypeError (the
 * check refused the input) propagates; anything else goes to dispatch's
 * _fast_failed (looked up there, so a replaced one is the one called),
 * which re-raises what is not the backend's fault or records
 * the failure and answers FAST_SLOW (the full path then runs the call). */
static PyObject *csa__fast_failed(const csa__fast_hit *h) {
  if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError))
    return NULL;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL)
    PyException_SetTraceback(value, tb);
  PyObject *res = NULL;
  PyObject *fn = PyDict_GetItemWithError(csa__fx.dispatch_ns, csa__fx.s_failed);
  if (fn != NULL && value != NULL)
    res = PyObject_CallFunctionObjArgs(fn, h->record, value, h->device, NULL);
  else if (fn == NULL && !PyErr_Occurred())
    PyErr_SetString(PyExc_RuntimeError, "dispatch has no _fast_failed");
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return res;
}

/* Runs hit h on the views in p (args: fast_call's).  The result, FAST_SLOW
 * (the full path takes over), or NULL with an exception. */
static PyObject *csa__fast_run(const csa__fast_hit *h, PyObject *const *args, csa_attn_params *p,
                               csa__py_keepalive *ka, const csa__fast_key *key) {
  if (csa__fast_len_arg(args[5], &p->max_seqlen_q) ||
      csa__fast_len_arg(args[6], &p->max_seqlen_kv) ||
      csa__fast_scale_arg(args[7], &p->softmax_scale))
    return Py_NewRef(csa__fx.slow);
  p->causal = key->facts.causal;
  csa_tensor scratch;
  memset(&scratch, 0, sizeof scratch);
  int run_kind = CSA__RUN_CPU;
  if (h->kind == CSA__FAST_CUDA) {
    /* An earlier call's device-side finding is raised by the full path
     * (plain read of pinned host memory, as _native.raise_pending does). */
    if (*h->flag_host != 0)
      return Py_NewRef(csa__fx.slow);
    /* T_q = 0 launches no kernel to check cu_seqlens in: the full path
     * runs the sanitizer for it. */
    if (p->q.shape[0] == 0)
      return Py_NewRef(csa__fx.slow);
    void *stream = NULL;
    if (csa__fast_stream(p->q.device_id, &stream) < 0)
      return NULL;
    p->stream = stream;
    run_kind = CSA__RUN_CUDA_FLAGGED;
  } else {
    PyObject *n = PyObject_CallNoArgs(csa__fx.num_threads);
    if (n == NULL)
      return NULL;
    p->num_threads = (int)PyLong_AsLong(n);
    Py_DECREF(n);
    if (PyErr_Occurred())
      return NULL;
  }

  const int64_t tq = p->q.shape[0], heads = p->q.shape[1], dv = p->v.shape[2];
  PyObject *out = NULL, *lse = NULL, *result = NULL;
  if (p->out.data == NULL && p->out.ndim == 0) {
    out = csa__fast_empty(3, tq, heads, dv, h->out_kw, &p->out, ka);
    if (out == NULL)
      return NULL;
  } else {
    out = Py_NewRef(args[11]);
  }
  if (key->facts.lse) {
    lse = csa__fast_empty(2, heads, tq, 0, h->lse_kw, &p->lse, ka);
    if (lse == NULL)
      goto done;
  }

  if (csa__fast_fail_next > 0) {
    csa__fast_fail_next--;
    PyErr_SetString(PyExc_RuntimeError, "injected kernel failure (fast_fail_next)");
    result = csa__fast_failed(h);
    goto done;
  }
  if (csa__py_run_params(run_kind, p, &scratch, &h->flag, NULL) < 0) {
    result = csa__fast_failed(h);
    goto done;
  }
  if (PyDict_SetItem(csa__fx.dispatch_ns, csa__fx.s_last, h->choice) < 0)
    goto done;
  result = lse != NULL ? PyTuple_Pack(2, out, lse) : Py_NewRef(out);
done:
  Py_XDECREF(out);
  Py_XDECREF(lse);
  return result;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                               */
/* ------------------------------------------------------------------------ */

static PyObject *csa__py_fast_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != CSA__FAST_NARGS) {
    PyErr_Format(PyExc_TypeError, "fast_call() takes %d positional arguments (%zd given)",
                 (int)CSA__FAST_NARGS, nargs);
    return NULL;
  }
  if (!csa__fx.ready)
    return csa__fx.slow != NULL ? Py_NewRef(csa__fx.slow) : Py_NewRef(Py_None);
  csa__fast_args a = {args[0], args[1], args[2], args[3], args[4],
                      args[11] == Py_None ? NULL : args[11]};
  csa_attn_params p;
  memset(&p, 0, sizeof p);
  csa__py_keepalive ka = {{0}, 0};
  csa__fast_key key;
  PyObject *comfy_owned = NULL, *result = NULL;
  const int made = csa__fast_key_make(&a, args, &p, &ka, &key, &comfy_owned);
  if (made != 0) {
    result = made < 0 ? NULL : Py_NewRef(csa__fx.slow);
    goto done;
  }
  const csa__fast_entry *e = csa__fast_find(&key);
  if (e == NULL) {
    csa__fast_n_miss++;
    result = csa__fast_token(&key);
    goto done;
  }
  if (e->kind == CSA__FAST_PY) {
    csa__fast_n_record++;
    result = Py_NewRef(e->record);
    goto done;
  }
  csa__fast_hit h;
  csa__fast_hit_take(&h, e); /* e is not touched again */
  /* a patched adapter (tests, benchmarks) is called by the full path */
  PyObject *run = PyObject_GetAttr(h.adapter, csa__fx.s_run);
  if (run == NULL) {
    csa__fast_hit_drop(&h);
    goto done;
  }
  const int patched = run != h.run_fn;
  Py_DECREF(run);
  result = patched ? Py_NewRef(csa__fx.slow) : csa__fast_run(&h, args, &p, &ka, &key);
  if (result != NULL && result != csa__fx.slow)
    csa__fast_n_run++;
  csa__fast_hit_drop(&h);
done:
  Py_XDECREF(comfy_owned);
  csa__py_keep_release(&ka);
  return result;
}

/* fast_remember(key, record, *, kind, choice, adapter, run_fn, device,
 *               out_kw, lse_kw, flag=None) -> bool (False: already held) */
static PyObject *csa__py_fast_remember(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"key",    "record", "kind",   "choice", "adapter", "run_fn",
                           "device", "out_kw", "lse_kw", "flag",   NULL};
  PyObject *token, *record, *choice = NULL, *adapter = NULL, *run_fn = NULL, *device = NULL;
  PyObject *out_kw = NULL, *lse_kw = NULL, *flag = Py_None;
  int kind = -1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$iOOOOO!O!O:fast_remember", kwlist, &token,
                                   &record, &kind, &choice, &adapter, &run_fn, &device,
                                   &PyDict_Type, &out_kw, &PyDict_Type, &lse_kw, &flag))
    return NULL;
  if (choice == NULL || adapter == NULL || run_fn == NULL || device == NULL || out_kw == NULL ||
      lse_kw == NULL) {
    PyErr_SetString(PyExc_TypeError, "fast_remember() needs kind, choice, adapter, run_fn, "
                                     "device, out_kw and lse_kw");
    return NULL;
  }
  csa__fast_key *k = PyCapsule_GetPointer(token, "csa.fast_key");
  if (k == NULL)
    return NULL;
  if (kind < CSA__FAST_PY || kind > CSA__FAST_CUDA) {
    PyErr_Format(PyExc_ValueError, "fast_remember(): unknown kind %d", kind);
    return NULL;
  }
  csa_tensor flag_view;
  memset(&flag_view, 0, sizeof flag_view);
  PyObject *flag_keep = NULL;
  const volatile int32_t *flag_host = NULL;
  if (kind == CSA__FAST_CUDA) {
    if (flag == Py_None) {
      PyErr_SetString(PyExc_ValueError, "fast_remember(): a CUDA entry needs the flag word");
      return NULL;
    }
    if (csa__py_tensor_view(flag, "flag", 1, &flag_view, &flag_keep) < 0)
      return NULL;
    if (flag_view.data == NULL || flag_view.dtype != CSA_INT32 || flag_view.ndim != 1 ||
        flag_view.shape[0] < 1) {
      Py_DECREF(flag_keep);
      PyErr_SetString(PyExc_ValueError, "fast_remember(): flag must be int32 [1]");
      return NULL;
    }
    /* keep the object given (a capsule keeps its tensor alive) */
    Py_DECREF(flag_keep);
    flag_keep = Py_NewRef(flag);
    flag_host = (const volatile int32_t *)flag_view.data;
    /* The kernel writes the word through its device address, which the
     * run step would otherwise look up on every call (pinned memory has
     * one; the entry keeps the memory alive, so the answer stays true). */
    int32_t *dev = NULL;
    if (csa__cuda_flags_address(&flag_view, k->facts.q_dev_id, &dev) == CSA_OK) {
      flag_view.data = dev;
      flag_view.device_type = CSA_DEVICE_CUDA;
      flag_view.device_id = k->facts.q_dev_id;
    }
  }
  if (csa__fast_find(k) != NULL) {
    Py_XDECREF(flag_keep);
    Py_RETURN_FALSE;
  }
  if (csa__fast_count >= CSA__FAST_MAX)
    csa__fast_clear_all();
  csa__fast_entry *e = PyMem_Calloc(1, sizeof *e);
  if (e == NULL) {
    Py_XDECREF(flag_keep);
    return PyErr_NoMemory();
  }
  e->key = *k;
  csa__fast_key_hold(&e->key);
  e->kind = kind;
  e->record = Py_NewRef(record);
  e->choice = Py_NewRef(choice);
  e->adapter = Py_NewRef(adapter);
  e->run_fn = Py_NewRef(run_fn);
  e->device = Py_NewRef(device);
  e->out_kw = Py_NewRef(out_kw);
  e->lse_kw = Py_NewRef(lse_kw);
  e->flag_keep = flag_keep;
  e->flag = flag_view;
  e->flag_host = flag_host;
  csa__fast_entry **bucket = &csa__fast_table[k->hash % CSA__FAST_BUCKETS];
  e->next = *bucket;
  *bucket = e;
  csa__fast_count++;
  Py_RETURN_TRUE;
}

static PyObject *csa__py_fast_clear(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  csa__fast_clear_all();
  Py_RETURN_NONE;
}

static PyObject *csa__py_fast_len(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyLong_FromLong(csa__fast_count);
}

/* fast_stats(reset=False) -> (calls run here, records returned, misses) */
static PyObject *csa__py_fast_stats(PyObject *self, PyObject *args) {
  (void)self;
  int reset = 0;
  if (!PyArg_ParseTuple(args, "|p:fast_stats", &reset))
    return NULL;
  PyObject *r = Py_BuildValue("(KKK)", csa__fast_n_run, csa__fast_n_record, csa__fast_n_miss);
  if (reset)
    csa__fast_n_run = csa__fast_n_record = csa__fast_n_miss = 0;
  return r;
}

static PyObject *csa__py_fast_fail_next(PyObject *self, PyObject *args) {
  (void)self;
  int n;
  if (!PyArg_ParseTuple(args, "i:fast_fail_next", &n))
    return NULL;
  csa__fast_fail_next = n;
  Py_RETURN_NONE;
}

/* fast_init(*, tensor_type, exchange_api, to_dlpack, empty, num_threads,
 *           grad_enabled, raw_stream, dispatch_ns, comfy_ns, comfy_flags,
 *           env, env_backend_key, env_exact_key)
 * -> None.  Binds torch's and dispatch's objects once;
 * exchange_api: torch.Tensor.__dlpack_c_exchange_api__ (a capsule of a
 * DLPack 1.x table) or None; anything else leaves the exporter in use. */
static PyObject *csa__py_fast_init(PyObject *self, PyObject *args, PyObject *kwargs) {
  (void)self;
  static char *kwlist[] = {"tensor_type", "exchange_api", "to_dlpack",   "empty",
                           "num_threads", "grad_enabled", "raw_stream",  "dispatch_ns",
                           "comfy_ns",    "comfy_flags",  "env",         "env_backend_key",
                           "env_exact_key", NULL};
  enum { N = 13 };
  PyObject *o[N];
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$O!OOOOOOO!O!OO!OO:fast_init", kwlist,
                                   &PyType_Type, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                                   &PyDict_Type, &o[7], &PyDict_Type, &o[8], &o[9], &PyDict_Type,
                                   &o[10], &o[11], &o[12]))
    return NULL;
  const int n_given = (int)(kwargs != NULL ? PyDict_Size(kwargs) : 0);
  if (n_given != N || PyTuple_Size(args) != 0) {
    PyErr_SetString(PyExc_TypeError, "fast_init() needs every keyword argument");
    return NULL;
  }
  const csa__dl_exchange_api *xapi = NULL;
  if (o[1] != Py_None && PyCapsule_IsValid(o[1], "dlpack_exchange_api")) {
    xapi = PyCapsule_GetPointer(o[1], "dlpack_exchange_api");
    if (xapi == NULL)
      return NULL;
    if (xapi->version.major != 1 || xapi->dltensor_from_py_object_no_sync == NULL ||
        xapi->current_work_stream == NULL)
      xapi = NULL; /* a table this code does not know: the exporter serves */
  }
  csa__fast_clear_all();
  csa__fx.ready = 0;
  PyObject **slots[] = {(PyObject **)&csa__fx.tensor_type, &csa__fx.xapi_owner,
                        &csa__fx.to_dlpack, &csa__fx.empty, &csa__fx.num_threads,
                        &csa__fx.grad_enabled, &csa__fx.raw_stream, &csa__fx.dispatch_ns,
                        &csa__fx.comfy_ns,
                        &csa__fx.comfy_flags, &csa__fx.env, &csa__fx.env_backend_key,
                        &csa__fx.env_exact_key};
  for (int i = 0; i < N; i++) {
    PyObject *old = *slots[i];
    *slots[i] = Py_NewRef(o[i]);
    Py_XDECREF(old);
  }
  csa__fx.xapi = xapi;
  csa__fx.ready = 1;
  Py_RETURN_NONE;
}

static PyMethodDef csa__fast_methods[] = {
    {"fast_call", (PyCFunction)(void (*)(void))csa__py_fast_call, METH_FASTCALL,
     "fast_call(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, "
     "softmax_scale, causal, return_lse, backend, out, check_cu_seqlens, ctx) -> result, "
     "remembered record, key, or FAST_SLOW"},
    {"fast_remember", (PyCFunction)(void (*)(void))csa__py_fast_remember,
     METH_VARARGS | METH_KEYWORDS,
     "fast_remember(key, record, *, kind, choice, adapter, run_fn, device, out_kw, lse_kw, "
     "flag=None) -> bool"},
    {"fast_init", (PyCFunction)(void (*)(void))csa__py_fast_init, METH_VARARGS | METH_KEYWORDS,
     "fast_init(*, tensor_type, exchange_api, ...) -> None"},
    {"fast_clear", csa__py_fast_clear, METH_NOARGS, "Forget every remembered decision."},
    {"fast_len", csa__py_fast_len, METH_NOARGS, "Number of remembered decisions."},
    {"fast_stats", csa__py_fast_stats, METH_VARARGS,
     "fast_stats(reset=False) -> (calls run in C, records returned, misses)"},
    {"fast_fail_next", csa__py_fast_fail_next, METH_VARARGS,
     "fast_fail_next(n): the next n native runs of fast_call fail as a kernel would (tests)"},
    {NULL, NULL, 0, NULL}};

static int csa__fast_intern(PyObject **slot, const char *s) {
  *slot = PyUnicode_InternFromString(s);
  return *slot != NULL ? 0 : -1;
}

/* Adds the fast_* functions, FAST_SLOW and the FAST_* kinds to m. */
int csa__py_fast_add_methods(PyObject *m);
int csa__py_fast_add_methods(PyObject *m) {
  if (PyModule_AddFunctions(m, csa__fast_methods) < 0)
    return -1;
  if (csa__fx.slow == NULL) {
    /* a capsule, like the keys: dispatch tells both from results by one
     * class check */
    static int csa__slow_marker;
    csa__fx.slow = PyCapsule_New(&csa__slow_marker, "csa.fast_slow", NULL);
    if (csa__fx.slow == NULL)
      return -1;
  }
  if (PyModule_AddObject(m, "FAST_SLOW", Py_NewRef(csa__fx.slow)) < 0)
    return -1;
  if (csa__fast_intern(&csa__fx.s_requires_grad, "requires_grad") < 0 ||
      csa__fast_intern(&csa__fx.s_run, "run") < 0 ||
      csa__fast_intern(&csa__fx.s_last, "_last") < 0 ||
      csa__fast_intern(&csa__fx.s_cached, "_cached") < 0 ||
      csa__fast_intern(&csa__fx.s_cli_args, "comfy.cli_args") < 0 ||
      csa__fast_intern(&csa__fx.s_failed, "_fast_failed") < 0)
    return -1;
  if (PyModule_AddIntConstant(m, "FAST_PY", CSA__FAST_PY) < 0 ||
      PyModule_AddIntConstant(m, "FAST_CPU", CSA__FAST_CPU) < 0 ||
      PyModule_AddIntConstant(m, "FAST_CUDA", CSA__FAST_CUDA) < 0)
    return -1;
  return 0;
}
