using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

public class NvtxTests
{
    /// <summary>No NVTX library on this machine: enabling reports it and ranges stay harmless no-ops.</summary>
    [Fact]
    public void HarmlessWithoutNvtxLibrary()
    {
        var log = new StringWriter();
        bool on = Nvtx.Enable(log);
        if (!on) Assert.Contains("ranges are off", log.ToString());
        using (Nvtx.Range("scoring")) { }
        Assert.Equal(on, Nvtx.Enabled);
    }
}
