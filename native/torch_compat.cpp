// libpz_torch_compat.so: three fixes for TorchSharp 0.107's native library, loaded as its DT_NEEDED
// (added by pz_torchsharp_patch), so they are in place before libtorch allocates anything.
//
// 1. std::ios_base_library_init() for libstdc++ older than GCC 13.
//    LibTorchSharp was built with GCC >= 13, whose <iostream> no longer constructs a static
//    std::ios_base::Init in every translation unit; instead it references this symbol (GLIBCXX_3.4.32) so
//    that libstdc++ initialises cout/cerr itself. Debian 12 ships GLIBCXX_3.4.30, which has neither the
//    symbol nor that self-initialisation. We define the symbol and keep one std::ios_base::Init alive for
//    the life of the process, which is what the old headers did.
//
// 2. THSTorch_dispose_scalar, deferred by one to two seconds.
//    TorchSharp passes a Scalar's native handle to an op without keeping the managed Scalar alive
//    (`a.add(b)` makes a temporary Scalar(1), reads its handle, calls THSTensor_add). When a GC on another
//    thread runs during that call, the Scalar's finalizer may free the c10::Scalar while the op reads it:
//    "Expected false to be true" from c10::Scalar::toFloat, or a wrong alpha. pz_torchsharp_patch renames
//    the library's own export, so P/Invoke lookups (dlsym on the library's handle, which searches its
//    dependencies next) find this definition. Freed scalars wait in the current generation; a generation
//    older than one second is deleted on a later dispose, long after any op that was given the handle has
//    read it (ops read their scalar arguments when they start). TorchSharp only makes numeric scalars,
//    whose destructor has nothing to release, so freeing the storage is all `delete` did.
//
// 3. glibc's mmap threshold fixed at 1 MiB.
//    By default glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), after
//    which tensors of up to 32 MiB come from the heap arenas, where freed memory stays with the process: on a
//    LLaMA-7B-shaped model the G pass kept about 1 GB more resident than it used. Fixed at 1 MiB, every
//    tensor above that is its own mapping, returned to the system when freed, at no measured cost in speed.
//    A MALLOC_MMAP_THRESHOLD_ set by the user wins.
#include <malloc.h>
#include <stdlib.h>
#include <chrono>
#include <ios>
#include <mutex>
#include <new>
#include <vector>

namespace {
std::ios_base::Init keep_iostreams_initialised;

std::mutex deferred_lock;
std::vector<void*> current_generation, previous_generation;
std::chrono::steady_clock::time_point generation_start = std::chrono::steady_clock::now();
}

namespace std {
__attribute__((visibility("default"))) void ios_base_library_init() {}
}

__attribute__((constructor)) static void fix_mmap_threshold() {
  if (getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 1 << 20);
}

extern "C" __attribute__((visibility("default"))) void THSTorch_dispose_scalar(void* scalar) {
  std::vector<void*> expired;
  {
    std::lock_guard<std::mutex> guard(deferred_lock);
    auto now = std::chrono::steady_clock::now();
    if (now - generation_start >= std::chrono::seconds(1)) {
      expired.swap(previous_generation);   // disposed one to two seconds ago
      previous_generation.swap(current_generation);
      generation_start = now;
    }
    current_generation.push_back(scalar);
  }
  for (void* p : expired) ::operator delete(p);
}

// For the test that proves the deferral is in place (TorchScalarLifetimeTests in tests/PrunerZero.Runtime.Tests/TorchLoadTests.cs).
extern "C" __attribute__((visibility("default"))) long pz_deferred_scalars(void) {
  std::lock_guard<std::mutex> guard(deferred_lock);
  return static_cast<long>(current_generation.size() + previous_generation.size());
}
