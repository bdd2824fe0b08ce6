using System.Runtime.InteropServices;

namespace PrunerZero.Runtime;

/// <summary>
/// glibc's heap during evaluation forwards (native/torch_compat.cpp, item 4). Outside a scope every block above 1 MiB is
/// its own mapping, returned to the system when freed (peak memory on large models); a mapping is fresh zeroed pages, so
/// a forward that allocates its activations anew for every batch pays a page fault per 4 KiB each time, which on the
/// embedded model was half of the evaluation forward. Inside a scope blocks of up to 32 MiB are reused from the heap;
/// when the last scope ends the 1 MiB threshold is back and the heap's free pages go back to the system.
/// </summary>
public static class NativeHeap
{
    [DllImport("libpz_torch_compat.so")] static extern void pz_heap_reuse_begin();
    [DllImport("libpz_torch_compat.so")] static extern void pz_heap_reuse_end();

    static NativeHeap()
    {
        // The compat library is loaded as libLibTorchSharp.so's dependency; the bare soname then finds it.
        TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU);
    }

    /// <summary>Heap reuse until the scope is disposed (scopes nest; a user's MALLOC_MMAP_THRESHOLD_ is left alone).</summary>
    public static IDisposable ReuseForForward()
    {
        if (!OperatingSystem.IsLinux()) return new Scope(false);
        pz_heap_reuse_begin();
        return new Scope(true);
    }

    sealed class Scope(bool open) : IDisposable
    {
        bool _open = open;

        public void Dispose()
        {
            if (!_open) return;
            _open = false;
            pz_heap_reuse_end();
        }
    }
}
