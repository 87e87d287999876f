/*
 * bench_tiles.h — the row tiles of one item for the tile-step benchmarks
 * (cpu_tile.c, amx_tile.c): full tiles of CSA__CPU_ROWS rows bound to a
 * laid-out scratch, keys [0, kv_end) visible, softmax state fresh.  Include
 * after kernel.inc.h (directly or through a kernel file).
 */
#ifndef CSA_BENCH_TILES_H
#define CSA_BENCH_TILES_H

static void csa_bench_tiles(const csa__k_scratch *sp, csa__k_tile *tiles, int ntile,
                            int64_t kv_end) {
  for (int i = 0; i < ntile; i++) {
    csa__k_tile *t = &tiles[i];
    csa__k_tile_bind(sp, t, i);
    t->r0 = i * CSA__CPU_ROWS, t->nr = CSA__CPU_ROWS, t->nrv = CSA__CPU_ROWS / CSA_VL;
    t->kv_end = kv_end;
    for (int r = 0; r < CSA__CPU_ROWS; r++) t->m[r] = CSA__M_INIT, t->l[r] = 0.0f;
  }
}

#endif /* CSA_BENCH_TILES_H */
