"""One small adapter per attention library (each imports its library lazily).

Every adapter module has ``load()`` (imports its library, raises ImportError
when absent, returns a version string) and ``run(q, k, v, cu_seqlens_q,
cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale, causal, out,
...)`` which returns ``out`` (or ``(out, lse)`` for backends with LSE when
asked).  Inputs reaching ``run`` were validated in C already.
"""
