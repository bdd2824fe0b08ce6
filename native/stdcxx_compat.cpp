// libpz_stdcxx_compat.so: supplies std::ios_base_library_init() for libstdc++ older than GCC 13.
//
// LibTorchSharp (TorchSharp 0.107) was built with GCC >= 13, whose <iostream> no longer constructs a
// static std::ios_base::Init in every translation unit; instead it references this symbol
// (GLIBCXX_3.4.32) so that libstdc++ initialises cout/cerr itself. Debian 12 ships GLIBCXX_3.4.30,
// which has neither the symbol nor that self-initialisation. We define the symbol and keep one
// std::ios_base::Init alive for the life of the process, which is what the old headers did.
#include <ios>

namespace {
std::ios_base::Init keep_iostreams_initialised;
}

namespace std {
__attribute__((visibility("default"))) void ios_base_library_init() {}
}
