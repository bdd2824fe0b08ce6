using System.Runtime.InteropServices;
using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

public class NvtxTests
{
    /// <summary>Whether NVTX can work here, found independently of Nvtx: the shim and an NVTX library both load.</summary>
    static bool NvtxLoadable()
    {
        string shim = Path.Combine(AppContext.BaseDirectory, "libpz_nvtx.so");
        bool shimLoads = NativeLibrary.TryLoad(shim, out var h1) || NativeLibrary.TryLoad("libpz_nvtx.so", out h1);
        bool nvtx = NativeLibrary.TryLoad("libnvToolsExt.so.1", out var h2) || NativeLibrary.TryLoad("libnvToolsExt.so", out h2);
        if (h1 != 0) NativeLibrary.Free(h1);
        if (h2 != 0) NativeLibrary.Free(h2);
        return shimLoads && nvtx;
    }

    /// <summary>Enabling turns ranges on exactly where NVTX exists, says why not elsewhere, and Disable restores the state.</summary>
    [Fact]
    public void EnableReportsExactlyWhetherNvtxExists()
    {
        bool was = Nvtx.Enabled;
        try
        {
            var log = new StringWriter();
            bool on = Nvtx.Enable(log);
            Assert.Equal(NvtxLoadable(), on);
            Assert.Equal(on, Nvtx.Enabled);
            if (on) Assert.Equal("", log.ToString());
            else Assert.Contains("ranges are off", log.ToString());
            using (Nvtx.Range("scoring")) { }   // balanced push/pop (or a no-op) either way

            Nvtx.Disable();
            Assert.False(Nvtx.Enabled);
            Assert.Equal(default, Nvtx.Range("off"));   // off: the empty scope, no native call
        }
        finally
        {
            if (was) Nvtx.Enable(); else Nvtx.Disable();
        }
    }
}
