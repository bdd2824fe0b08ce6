using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

// The loader fix (native/torchsharp_patch.c) must let LibTorch run here with no manual step.
public class TorchLoadTests
{
    [Fact]
    public void TensorOpAndBackwardRun()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new float[] { 1, 2, 3 }, requires_grad: true);
        var loss = (a * a).sum();
        loss.backward();
        Assert.Equal(new float[] { 2, 4, 6 }, a.grad!.data<float>().ToArray());
        Assert.Equal(14f, loss.item<float>());
    }
}

// TorchSharp 0.107 reads a Scalar's handle and calls the op without keeping the Scalar alive, so a GC during
// the call could let its finalizer free the c10::Scalar under the op (`a.add(b)` makes a temporary Scalar(1)).
// Without the deferred dispose in native/torch_compat.cpp this loop failed within ~30,000 adds here
// ("Expected false to be true" from c10::Scalar::toFloat); it was the CI flake of 2026-12-02.
public class TorchScalarLifetimeTests
{
    [Fact]
    public void TemporaryScalarsSurviveFinalizersDuringOps()
    {
        using var a = ones(4);
        using var b = ones(4);
        using var stop = new CancellationTokenSource();
        var churn = new Thread(() =>
        {
            var keep = new List<byte[]>();
            while (!stop.IsCancellationRequested) { keep.Add(new byte[1000]); if (keep.Count > 1000) keep.Clear(); }
        });
        churn.Start();
        try
        {
            for (int i = 1; i <= 300_000; i++)
            {
                using var c = a.add(b);
                if (i % 50_000 == 0)
                {
                    GC.Collect(0, GCCollectionMode.Forced, blocking: false);
                    Assert.Equal(8f, c.sum().item<float>());
                }
            }
        }
        finally { stop.Cancel(); churn.Join(); }

        // The deferral is the compat library's, reached through TorchSharp's own P/Invoke.
        var compat = System.Runtime.InteropServices.NativeLibrary.Load("libpz_torch_compat.so");
        unsafe
        {
            var deferred = (delegate* unmanaged<long>)System.Runtime.InteropServices.NativeLibrary.GetExport(compat, "pz_deferred_scalars");
            Assert.True(deferred() > 0, "no Scalar went through the deferred dispose: the TorchSharp patch is not in place");
        }
    }
}

/// <summary>The compat library fixes glibc's mmap threshold at 1 MiB when TorchSharp loads (native/torch_compat.cpp, 3).</summary>
public class MallocThresholdTests
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc")] static extern nint Malloc(nuint size);
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "free")] static extern void Free(nint p);

    /// <summary>glibc's chunk header: the size word just before the pointer, bit 1 = IS_MMAPPED.</summary>
    static unsafe bool Mmapped(nint p) => (((nuint*)p)[-1] & 2) != 0;

    [Fact]
    public void BlocksAboveOneMibAreMappedEvenAfterALargerOneIsFreed()
    {
        Assert.Null(Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_"));
        using (var t = ones(4)) Assert.Equal(4f, t.sum().item<float>());   // TorchSharp (and so the compat library) loaded
        // With glibc's dynamic threshold, freeing a mapped 8 MiB block raises the threshold to 8 MiB and the
        // 4 MiB block after it comes from the heap, where freed memory stays with the process.
        nint big = Malloc(8 << 20);
        Assert.True(Mmapped(big));
        Free(big);
        nint next = Malloc(4 << 20), small = Malloc(512 << 10);
        try
        {
            Assert.True(Mmapped(next), "a 4 MiB block came from the heap: the mmap threshold is not fixed at 1 MiB");
            Assert.False(Mmapped(small), "a 512 KiB block was mapped: the threshold is below 1 MiB");
        }
        finally { Free(next); Free(small); }
    }
}
