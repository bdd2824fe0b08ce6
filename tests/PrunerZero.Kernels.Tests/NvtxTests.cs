using System.Runtime.InteropServices;
using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

public class NvtxTests
{
    /// <summary>Whether NVTX can work here, found independently of Nvtx: an NVTX library loads and exports both entry points.</summary>
    static bool NvtxLoadable()
    {
        foreach (string name in new[] { "libnvToolsExt.so.1", "libnvToolsExt.so" })
        {
            if (!NativeLibrary.TryLoad(name, out var library)) continue;
            bool both = NativeLibrary.TryGetExport(library, "nvtxRangePushA", out _) && NativeLibrary.TryGetExport(library, "nvtxRangePop", out _);
            NativeLibrary.Free(library);
            if (both) return true;
        }
        return false;
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
