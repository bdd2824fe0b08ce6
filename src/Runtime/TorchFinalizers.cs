using System.Runtime.InteropServices;
using TorchSharp;

namespace PrunerZero.Runtime;

/// <summary>
/// How many TorchSharp Tensors and Scalars the .NET finalizer has freed in this process, as counted by the compat
/// library (native/torch_compat.cpp, which also defers those frees so an op still reading the object is safe).
/// The project disposes every Tensor and Scalar itself; the tests fail when a count moves.
/// </summary>
public static class TorchFinalizers
{
    [DllImport("libpz_torch_compat.so")] static extern long pz_finalized_tensors();
    [DllImport("libpz_torch_compat.so")] static extern long pz_finalized_scalars();

    static TorchFinalizers()
    {
        // The compat library is loaded as libLibTorchSharp.so's dependency; the bare soname then finds it.
        torch.InitializeDeviceType(DeviceType.CPU);
    }

    public readonly record struct Counts(long Tensors, long Scalars)
    {
        public override string ToString() => $"{Tensors} tensor(s) and {Scalars} scalar(s)";
    }

    /// <summary>The counts as they stand (objects still waiting for the finalizer are not in them).</summary>
    public static Counts Now() => new(pz_finalized_tensors(), pz_finalized_scalars());

    /// <summary>Runs the garbage collector and every pending finalizer first, so each unreachable object is counted.</summary>
    public static Counts Settle()
    {
        for (int i = 0; i < 2; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        return Now();
    }
}
