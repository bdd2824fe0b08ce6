// libpz_nvtx.so: NVTX ranges for Nsight, loaded from .NET only when profiling is switched on.
//
// NVTX v3 is header-only in CUDA; its C entry points live in libnvToolsExt.so (NVTX v2) or are
// injected by Nsight through NVTX_INJECTION64_PATH. We resolve nvtxRangePushA/nvtxRangePop at run time
// with dlopen so that this shim builds and loads on machines without CUDA: there every call is a
// cheap no-op and pz_nvtx_available() returns 0.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef int (*push_fn)(const char*);
typedef int (*pop_fn)(void);

static push_fn push_a = NULL;
static pop_fn pop = NULL;
static int initialised = 0;

static void init(void) {
  if (initialised) return;
  initialised = 1;
  const char* names[] = {"libnvToolsExt.so.1", "libnvToolsExt.so", NULL};
  for (int i = 0; names[i] != NULL; i++) {
    void* h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) continue;
    push_a = (push_fn)dlsym(h, "nvtxRangePushA");
    pop = (pop_fn)dlsym(h, "nvtxRangePop");
    if (push_a != NULL && pop != NULL) return;
    push_a = NULL;
    pop = NULL;
  }
}

int pz_nvtx_available(void) {
  init();
  return push_a != NULL;
}

int pz_nvtx_push(const char* name) {
  init();
  return push_a != NULL ? push_a(name) : -1;
}

int pz_nvtx_pop(void) {
  init();
  return pop != NULL ? pop() : -1;
}
