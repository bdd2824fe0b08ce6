using System.Runtime.InteropServices;
using System.Text;

namespace PrunerZero.Kernels;

/// <summary>
/// NVTX ranges for Nsight Systems, called straight into libnvToolsExt through function pointers found with
/// <see cref="NativeLibrary"/> (NVTX v2's C entry points <c>nvtxRangePushA</c> / <c>nvtxRangePop</c>; NVTX v3 is
/// header-only in CUDA and Nsight injects into the same library). Nothing native is built or shipped for this.
/// Off unless PZ_NVTX=1 or <see cref="Enable"/> is called; when off a range is a no-op struct with no native call.
/// Where no NVTX library exists, enabling says so once and stays off.
/// </summary>
public static unsafe class Nvtx
{
    /// <summary>Tried in this order; the CUDA toolkit ships libnvToolsExt.so.1.</summary>
    static readonly string[] LibraryNames = ["libnvToolsExt.so.1", "libnvToolsExt.so"];

    // Set once by TryInit, never cleared: a Scope opened before Disable still pops.
    static delegate* unmanaged<byte*, int> _push;
    static delegate* unmanaged<int> _pop;

    static bool _enabled = Environment.GetEnvironmentVariable("PZ_NVTX") == "1" && TryInit(Console.Error);

    public static bool Enabled => _enabled;

    /// <summary>Switches ranges on; returns false (with a note on <paramref name="log"/>) where no NVTX library exists.</summary>
    public static bool Enable(TextWriter? log = null) => _enabled = TryInit(log);

    /// <summary>Switches ranges off again (ranges opened before stay balanced: each scope remembers whether it pushed).</summary>
    public static void Disable() => _enabled = false;

    static bool TryInit(TextWriter? log)
    {
        if (_push != null) return true;
        foreach (string name in LibraryNames)
        {
            if (!NativeLibrary.TryLoad(name, out nint library)) continue;
            if (NativeLibrary.TryGetExport(library, "nvtxRangePushA", out nint push)
                && NativeLibrary.TryGetExport(library, "nvtxRangePop", out nint pop))
            {
                _pop = (delegate* unmanaged<int>)pop;
                _push = (delegate* unmanaged<byte*, int>)push;
                return true;
            }
            NativeLibrary.Free(library);
        }
        log?.WriteLine("nvtx: no libnvToolsExt found; ranges are off");
        return false;
    }

    /// <summary>`using var _ = Nvtx.Range("scoring");` pushes a named range until disposed.</summary>
    public static Scope Range(string name)
    {
        if (!_enabled) return default;
        // A NUL-terminated UTF-8 copy of the name on the stack (range names are short words).
        int max = Encoding.UTF8.GetMaxByteCount(name.Length) + 1;
        Span<byte> utf8 = max <= 256 ? stackalloc byte[max] : new byte[max];
        utf8[Encoding.UTF8.GetBytes(name, utf8)] = 0;
        fixed (byte* text = utf8) _push(text);
        return new Scope(true);
    }

    public readonly struct Scope(bool active) : IDisposable
    {
        public void Dispose()
        {
            if (active) _pop();
        }
    }
}
