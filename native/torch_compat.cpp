// libpz_torch_compat.so: fixes for TorchSharp 0.107's native library, loaded as its DT_NEEDED
// (added by pz_torchsharp_patch), so they are in place before libtorch allocates anything.
//
// 1. std::ios_base_library_init() for libstdc++ older than GCC 13.
//    LibTorchSharp was built with GCC >= 13, whose <iostream> no longer constructs a static
//    std::ios_base::Init in every translation unit; instead it references this symbol (GLIBCXX_3.4.32) so
//    that libstdc++ initialises cout/cerr itself. Debian 12 ships GLIBCXX_3.4.30, which has neither the
//    symbol nor that self-initialisation. We define the symbol and keep one std::ios_base::Init alive for
//    the life of the process, which is what the old headers did.
//
// 2. Frees that come from the .NET finalizer: counted, and deferred by one to two seconds.
//    TorchSharp passes a Tensor's or Scalar's native handle to an op without keeping the managed object
//    alive (`(randn(...) * scale)` reads the randn tensor's handle, then the tensor is garbage; `a.add(b)`
//    makes a temporary Scalar(1) the same way). When a GC on another thread runs during that call, the
//    object's finalizer frees the native tensor or c10::Scalar while the op reads it: a SIGSEGV in
//    at::TensorIteratorBase::build, or "Expected false to be true" from c10::Scalar::toFloat.
//    pz_torchsharp_patch renames the library's own THSTensor_dispose and THSTorch_dispose_scalar exports
//    (to SiS..., a name with the same GNU hash, so it can still be looked up), so P/Invoke lookups (dlsym on the library's handle, which searches its
//    dependencies next) find these definitions.
//    - Every Scalar free waits (freed Scalars cost a few bytes), as before.
//    - A Tensor free from the finalizer thread (CoreCLR names it ".NET Finalizer") waits; one from any other
//      thread (a Dispose) happens at once, so deterministic disposal keeps its memory behaviour.
//    A waiting object sits in the current generation; a generation older than one second is freed on a later
//    dispose, long after any op that was given the handle has read it (ops read their arguments when they
//    start). Both kinds of finalizer free are counted: the project disposes every Tensor and Scalar itself,
//    and its tests fail when a count moves (pz_finalized_tensors, pz_finalized_scalars); the deferral only
//    keeps a user's run alive where a leak slipped through.
//
// 3. glibc's mmap threshold fixed at 1 MiB.
//    By default glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), after
//    which tensors of up to 32 MiB come from the heap arenas, where freed memory stays with the process: on a
//    LLaMA-7B-shaped model the G pass kept about 1 GB more resident than it used. Fixed at 1 MiB, every
//    tensor above that is its own mapping, returned to the system when freed.
//    A MALLOC_MMAP_THRESHOLD_ set by the user wins.
//
// 4. Evaluation forwards reuse heap memory (pz_heap_reuse_begin / pz_heap_reuse_end).
//    A mapping is fresh zeroed pages: every activation above 1 MiB costs a page fault per 4 KiB each time it is
//    allocated. On the embedded model that was half of the evaluation forward (logits 16 MiB, log-softmax 4 MiB per
//    window, 2.3x slower; `prunerzero bench`). Inside a begin/end pair the threshold is glibc's largest, 32 MiB, and
//    the trim threshold 1 GiB (else freeing the block at the heap's top hands its pages back at once and the next
//    batch faults them in again), so those blocks are reused; the last end puts back 1 MiB and 128 KiB and gives the heap's free pages back to
//    the system (malloc_trim), so what a forward held is not kept after it. A forward's working set is bounded by
//    its window batch (Perplexity.WindowBatch), so this adds at most that to the peak.
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <atomic>
#include <chrono>
#include <ios>
#include <mutex>
#include <new>
#include <vector>


namespace {
std::ios_base::Init keep_iostreams_initialised;

// Objects whose free waits: Scalars (deleted) and finalized Tensors (given to the library's dispose).
struct Deferred {
  void* ptr;
  bool tensor;
};
std::mutex deferred_lock;
std::vector<Deferred> current_generation, previous_generation;
std::chrono::steady_clock::time_point generation_start = std::chrono::steady_clock::now();
std::atomic<long> finalized_tensors{0}, finalized_scalars{0};

bool on_finalizer_thread() {
  thread_local int known = -1;
  if (known < 0) {
    char name[17] = {0};
    known = prctl(PR_GET_NAME, name, 0, 0, 0) == 0 && strcmp(name, ".NET Finalizer") == 0;
  }
  return known == 1;
}

// The library's own tensor dispose, renamed SiSTensor_dispose by pz_torchsharp_patch; looked up once, on the first
// tensor dispose (libLibTorchSharp.so, this library's only user, is loaded by then).
void library_tensor_dispose(void* tensor) {
  using Dispose = void (*)(void*);
  static Dispose dispose = [] {
    void* lib = dlopen("libLibTorchSharp.so", RTLD_LAZY | RTLD_NOLOAD);
    void* f = lib ? dlsym(lib, "SiSTensor_dispose") : nullptr;
    if (f == nullptr) {
      fprintf(stderr, "libpz_torch_compat: libLibTorchSharp.so's SiSTensor_dispose not found (not patched by pz_torchsharp_patch?)\n");
      abort();
    }
    return reinterpret_cast<Dispose>(f);
  }();
  dispose(tensor);
}

void free_now(const Deferred& d) {
  if (d.tensor) library_tensor_dispose(d.ptr);
  else ::operator delete(d.ptr);
}

void defer(void* p, bool tensor) {
  std::vector<Deferred> expired;
  {
    std::lock_guard<std::mutex> guard(deferred_lock);
    auto now = std::chrono::steady_clock::now();
    if (now - generation_start >= std::chrono::seconds(1)) {
      expired.swap(previous_generation);   // disposed one to two seconds ago
      previous_generation.swap(current_generation);
      generation_start = now;
    }
    current_generation.push_back({p, tensor});
  }
  for (const Deferred& d : expired) free_now(d);
}

// PZ_REPORT_FINALIZED=1: each Tensor or Scalar the finalizer frees is named on stderr (a tensor by its dtype code and
// shape), to find the code that leaked it.
bool report_finalized() {
  static const bool on = getenv("PZ_REPORT_FINALIZED") != nullptr;
  return on;
}

void report_tensor(void* tensor) {
  using Long = long (*)(void*);
  using Size = long (*)(void*, long);
  using Type = signed char (*)(void*);
  void* lib = dlopen("libLibTorchSharp.so", RTLD_LAZY | RTLD_NOLOAD);
  auto ndim = lib ? reinterpret_cast<Long>(dlsym(lib, "THSTensor_ndimension")) : nullptr;
  auto size = lib ? reinterpret_cast<Size>(dlsym(lib, "THSTensor_size")) : nullptr;
  auto type = lib ? reinterpret_cast<Type>(dlsym(lib, "THSTensor_type")) : nullptr;
  if (!ndim || !size || !type) return;
  long n = ndim(tensor);
  fprintf(stderr, "pz: tensor finalized: dtype %d shape [", (int)type(tensor));
  for (long i = 0; i < n; i++) fprintf(stderr, i ? ", %ld" : "%ld", size(tensor, i));
  fprintf(stderr, "]\n");
}
}  // namespace

namespace std {
__attribute__((visibility("default"))) void ios_base_library_init() {}
}

namespace {
constexpr int kMappedAbove = 1 << 20;       // the threshold outside evaluation forwards
constexpr int kReusedBelow = 32 << 20;      // glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
constexpr int kTrimAbove = 128 << 10;       // glibc's default trim threshold (fixed once the mmap threshold is set)
constexpr int kKeptInScope = 1 << 30;       // a freed block at the top of the heap stays for the next batch
std::mutex heap_lock;
int heap_users = 0;
bool user_threshold() { return getenv("MALLOC_MMAP_THRESHOLD_") != nullptr; }
}  // namespace

__attribute__((constructor)) static void fix_mmap_threshold() {
  if (!user_threshold()) mallopt(M_MMAP_THRESHOLD, kMappedAbove);
}

// A user's MALLOC_MMAP_THRESHOLD_ is kept: begin and end then change nothing.
extern "C" __attribute__((visibility("default"))) void pz_heap_reuse_begin(void) {
  if (user_threshold()) return;
  std::lock_guard<std::mutex> guard(heap_lock);
  if (heap_users++ == 0 && (mallopt(M_MMAP_THRESHOLD, kReusedBelow) != 1 || mallopt(M_TRIM_THRESHOLD, kKeptInScope) != 1)) {
    fprintf(stderr, "libpz_torch_compat: mallopt refused the evaluation heap settings\n");
    abort();
  }
}

extern "C" __attribute__((visibility("default"))) void pz_heap_reuse_end(void) {
  if (user_threshold()) return;
  std::lock_guard<std::mutex> guard(heap_lock);
  if (heap_users == 0) {
    fprintf(stderr, "libpz_torch_compat: pz_heap_reuse_end without a begin\n");
    abort();
  }
  if (--heap_users == 0) {
    mallopt(M_MMAP_THRESHOLD, kMappedAbove);
    mallopt(M_TRIM_THRESHOLD, kTrimAbove);
    malloc_trim(0);
  }
}

extern "C" __attribute__((visibility("default"))) void THSTorch_dispose_scalar(void* scalar) {
  if (on_finalizer_thread()) {
    finalized_scalars.fetch_add(1, std::memory_order_relaxed);
    if (report_finalized()) fprintf(stderr, "pz: scalar finalized\n");
  }
  defer(scalar, false);
}


extern "C" __attribute__((visibility("default"))) void THSTensor_dispose(void* tensor) {
  if (!on_finalizer_thread()) {
    library_tensor_dispose(tensor);
    return;
  }
  finalized_tensors.fetch_add(1, std::memory_order_relaxed);
  if (report_finalized()) report_tensor(tensor);
  defer(tensor, true);
}

// For the tests (tests/PrunerZero.Runtime.Tests/TorchLoadTests.cs and the finalizer guard of every test project).
extern "C" __attribute__((visibility("default"))) long pz_deferred_scalars(void) {
  std::lock_guard<std::mutex> guard(deferred_lock);
  long n = 0;
  for (const auto* g : {&current_generation, &previous_generation})
    for (const Deferred& d : *g) n += !d.tensor;
  return n;
}

extern "C" __attribute__((visibility("default"))) long pz_finalized_tensors(void) { return finalized_tensors.load(); }
extern "C" __attribute__((visibility("default"))) long pz_finalized_scalars(void) { return finalized_scalars.load(); }
