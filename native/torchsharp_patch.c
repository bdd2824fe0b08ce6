// pz_torchsharp_patch: fixes a copy of libLibTorchSharp.so (TorchSharp 0.107) with libpz_torch_compat.so.
//
// usage: pz_torchsharp_patch LIB COMPAT_SONAME
//   Patches LIB in place (the build runs it on the copy in the output folder, never on the NuGet cache).
//   Exit 0 when patched or already patched.
//
// Always:
//  3. a DT_NEEDED on COMPAT_SONAME (our libpz_torch_compat.so, native/torch_compat.cpp) is added;
//  4. the library's exports THSTorch_dispose_scalar and THSTensor_dispose are renamed (TH -> Si, same hash),
//     so TorchSharp's P/Invoke of those names resolves to the compat library's versions, which count and defer
//     frees made by the .NET finalizer (see torch_compat.cpp: a finalizer could free a Scalar or a Tensor
//     while an op reads it); the compat library calls the renamed SiSTensor_dispose for the real free.
// Only when the system libstdc++ lacks GLIBCXX_3.4.32 (Debian 12): the library needs that version for one
// symbol only, std::ios_base_library_init(), which the compat library defines. The same as
// `patchelf --clear-symbol-version` and marking the version weak:
//  1. the symbol's .gnu.version entry becomes VER_NDX_GLOBAL, so it binds to any definition;
//  2. the GLIBCXX_3.4.32 entry of .gnu.version_r gets VER_FLG_WEAK, so its absence is not fatal.
// patchelf would grow the file to add (3); we avoid that dependency by reusing two things the library
// carries spare: the DT_SYMBOLIC entry (redundant when DT_FLAGS has DF_SYMBOLIC, which glibc treats the
// same) and the tail of the DT_RUNPATH string (build-machine paths after "$ORIGIN/"). If either is
// missing the tool says so and fails rather than guessing.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char* SYMBOL = "_ZSt21ios_base_library_initv";
static const char* VERSION = "GLIBCXX_3.4.32";
static const char* DISPOSES[] = {"THSTorch_dispose_scalar", "THSTensor_dispose"};
// An earlier build's compat library name; a copy patched with it is renamed in place (it is longer).
static const char* OLD_COMPAT = "libpz_stdcxx_compat.so";

static int fail(const char* lib, const char* what) {
  fprintf(stderr, "pz_torchsharp_patch: %s: %s\n", lib, what);
  return 1;
}

static int system_has_version(void) {
  void* h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return 0;
  int found = dlvsym(h, SYMBOL, VERSION) != NULL;
  dlclose(h);
  return found;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: pz_torchsharp_patch LIB COMPAT_SONAME\n");
    return 2;
  }
  const char* lib = argv[1];
  const char* compat = argv[2];
  int needs_glibcxx_fix = !system_has_version();

  int fd = open(lib, O_RDWR);
  if (fd < 0) return fail(lib, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) return fail(lib, "not an ELF file");
  unsigned char* base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(lib, strerror(errno));
  size_t size = (size_t)st.st_size;

  Elf64_Ehdr* eh = (Elf64_Ehdr*)base;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
    return fail(lib, "not a 64-bit ELF file");
  if (eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size) return fail(lib, "section table past end of file");
  Elf64_Shdr* sh = (Elf64_Shdr*)(base + eh->e_shoff);

  Elf64_Shdr *dynsym = NULL, *versym = NULL, *verneed = NULL, *dynamic = NULL;
  for (int i = 0; i < eh->e_shnum; i++) {
    switch (sh[i].sh_type) {
      case SHT_DYNSYM: dynsym = &sh[i]; break;
      case SHT_GNU_versym: versym = &sh[i]; break;
      case SHT_GNU_verneed: verneed = &sh[i]; break;
      case SHT_DYNAMIC: dynamic = &sh[i]; break;
    }
  }
  if (!dynsym || !versym || !verneed || !dynamic) return fail(lib, "missing .dynsym, .gnu.version, .gnu.version_r or .dynamic");
  char* dynstr = (char*)(base + sh[dynsym->sh_link].sh_offset);
  size_t dynstr_size = sh[dynsym->sh_link].sh_size;

  // 3 first (the only step that can fail for lack of room), so a failure leaves the file untouched.
  Elf64_Dyn* dyn = (Elf64_Dyn*)(base + dynamic->sh_offset);
  size_t ndyn = dynamic->sh_size / sizeof(Elf64_Dyn);
  Elf64_Dyn *symbolic = NULL, *runpath = NULL;
  int df_symbolic = 0, already = 0;
  for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
    if (dyn[i].d_tag == DT_SYMBOLIC) symbolic = &dyn[i];
    if (dyn[i].d_tag == DT_FLAGS && (dyn[i].d_un.d_val & DF_SYMBOLIC)) df_symbolic = 1;
    if (dyn[i].d_tag == DT_RUNPATH || dyn[i].d_tag == DT_RPATH) runpath = &dyn[i];
    if (dyn[i].d_tag == DT_NEEDED && dyn[i].d_un.d_val < dynstr_size && strcmp(dynstr + dyn[i].d_un.d_val, compat) == 0)
      already = 1;
    if (dyn[i].d_tag == DT_NEEDED && dyn[i].d_un.d_val < dynstr_size && strcmp(dynstr + dyn[i].d_un.d_val, OLD_COMPAT) == 0) {
      if (strlen(compat) > strlen(OLD_COMPAT)) return fail(lib, "patched for an older compat library whose name is too short to reuse; delete the output folder and rebuild");
      char* name = dynstr + dyn[i].d_un.d_val;
      memset(name, 0, strlen(OLD_COMPAT));
      memcpy(name, compat, strlen(compat));
      already = 1;
    }
  }
  if (!already) {
    if (symbolic == NULL || !df_symbolic) return fail(lib, "no spare dynamic entry (expected DT_SYMBOLIC beside DF_SYMBOLIC)");
    if (runpath == NULL) return fail(lib, "no DT_RUNPATH to carry the new DT_NEEDED name");
    char* rp = dynstr + runpath->d_un.d_val;
    const char* origin = "$ORIGIN/";
    size_t keep = strlen(origin), rplen = strlen(rp), need = strlen(compat) + 1;
    if (strncmp(rp, origin, keep) != 0) return fail(lib, "DT_RUNPATH does not start with $ORIGIN/");
    if (rplen < keep + 1 + need) return fail(lib, "DT_RUNPATH too short to carry the new DT_NEEDED name");
    // "$ORIGIN/" NUL COMPAT NUL, rest zeroed: the runpath keeps its only useful entry.
    memset(rp + keep, 0, rplen - keep);
    memcpy(rp + keep + 1, compat, need);
    symbolic->d_tag = DT_NEEDED;
    symbolic->d_un.d_val = runpath->d_un.d_val + keep + 1;
  }

  Elf64_Sym* syms = (Elf64_Sym*)(base + dynsym->sh_offset);
  Elf64_Half* vers = (Elf64_Half*)(base + versym->sh_offset);
  size_t nsyms = dynsym->sh_size / sizeof(Elf64_Sym);

  // 4. Rename the library's own disposes: the first two letters "TH" become "Si", which keeps the name's GNU hash
  // (h = 33 h + c: 'S' = 'T' - 1 and 'i' = 'H' + 33), so the hash table stays valid and the compat library can still
  // look the original up by its new name. An earlier build's rename ("_H...") is brought to this form. A name's first
  // byte must follow a NUL: a longer name that ends with this one would share the bytes (string-table suffix merging).
  int renamed = 0;
  for (size_t d = 0; d < sizeof DISPOSES / sizeof DISPOSES[0]; d++) {
    const char* target = DISPOSES[d];
    int found = 0;
    for (size_t i = 0; i < nsyms; i++) {
      if (syms[i].st_name == 0 || syms[i].st_name >= dynstr_size) continue;
      char* name = dynstr + syms[i].st_name;
      if (strcmp(name + 2, target + 2) != 0) continue;
      if (name[0] == 'S' && name[1] == 'i') { found++; continue; }
      if (!((name[0] == 'T' || name[0] == '_') && name[1] == 'H')) continue;
      if (name[-1] != '\0') { fprintf(stderr, "pz_torchsharp_patch: %s: %s shares its name's bytes with another symbol\n", lib, target); return 1; }
      name[0] = 'S';
      name[1] = 'i';
      found++;
      renamed++;
    }
    if (found == 0) { fprintf(stderr, "pz_torchsharp_patch: %s: no %s export to redirect (another TorchSharp version?)\n", lib, target); return 1; }
  }

  int cleared = 0, weakened = 0;
  if (needs_glibcxx_fix) {
    // 1. The symbol's version index -> global.
    for (size_t i = 0; i < nsyms; i++) {
      if (syms[i].st_name < dynstr_size && strcmp(dynstr + syms[i].st_name, SYMBOL) == 0) {
        vers[i] = VER_NDX_GLOBAL;
        cleared++;
      }
    }

    // 2. The version requirement -> weak.
    unsigned char* vp = base + verneed->sh_offset;
    for (;;) {
      Elf64_Verneed* vn = (Elf64_Verneed*)vp;
      unsigned char* ap = vp + vn->vn_aux;
      for (int j = 0; j < vn->vn_cnt; j++) {
        Elf64_Vernaux* va = (Elf64_Vernaux*)ap;
        if (va->vna_name < dynstr_size && strcmp(dynstr + va->vna_name, VERSION) == 0) {
          va->vna_flags |= VER_FLG_WEAK;
          weakened++;
        }
        if (va->vna_next == 0) break;
        ap += va->vna_next;
      }
      if (vn->vn_next == 0) break;
      vp += vn->vn_next;
    }
  }

  msync(base, size, MS_SYNC);
  munmap(base, size);
  close(fd);
  printf("pz_torchsharp_patch: %s: %s; %d dispose export(s) redirected; %d symbol version(s) cleared, %d %s requirement(s) made weak%s\n", lib,
         already ? "compat library already needed" : "compat library added as DT_NEEDED",
         renamed, cleared, weakened, VERSION,
         needs_glibcxx_fix ? "" : " (the system libstdc++ has it)");
  return 0;
}
