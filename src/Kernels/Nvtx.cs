using System.Runtime.InteropServices;

namespace PrunerZero.Kernels;

/// <summary>
/// NVTX ranges for Nsight Systems, through native/libpz_nvtx.so (which finds libnvToolsExt at run time).
/// Off unless PZ_NVTX=1 or <see cref="Enable"/> is called; when off a range is a no-op struct with no
/// native call. Where the shim or NVTX is missing, enabling says so once and stays off.
/// </summary>
public static partial class Nvtx
{
    static bool _enabled = Environment.GetEnvironmentVariable("PZ_NVTX") == "1" && TryInit(Console.Error);

    public static bool Enabled => _enabled;

    /// <summary>Switches ranges on; returns false (with a note on <paramref name="log"/>) where no NVTX library exists.</summary>
    public static bool Enable(TextWriter? log = null) => _enabled = TryInit(log);

    /// <summary>Switches ranges off again (ranges opened before stay balanced: each scope remembers whether it pushed).</summary>
    public static void Disable() => _enabled = false;

    static bool TryInit(TextWriter? log)
    {
        try
        {
            if (pz_nvtx_available() != 0) return true;
            log?.WriteLine("nvtx: no libnvToolsExt found; ranges are off");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            log?.WriteLine($"nvtx: native shim libpz_nvtx.so not loadable ({e.Message}); ranges are off");
        }
        return false;
    }

    /// <summary>`using var _ = Nvtx.Range("scoring");` pushes a named range until disposed.</summary>
    public static Scope Range(string name)
    {
        if (!_enabled) return default;
        pz_nvtx_push(name);
        return new Scope(true);
    }

    public readonly struct Scope(bool active) : IDisposable
    {
        public void Dispose()
        {
            if (active) pz_nvtx_pop();
        }
    }

    [LibraryImport("pz_nvtx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int pz_nvtx_push(string name);

    [LibraryImport("pz_nvtx")]
    private static partial int pz_nvtx_pop();

    [LibraryImport("pz_nvtx")]
    private static partial int pz_nvtx_available();
}
