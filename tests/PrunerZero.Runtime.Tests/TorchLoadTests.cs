using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

// The loader fix (native/torchsharp_patch.c) must let LibTorch run here with no manual step.
public class TorchLoadTests : TorchGuarded
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

// TorchSharp 0.107 reads a Tensor's or Scalar's handle and calls the op without keeping the managed object alive,
// so a GC during the call could let its finalizer free the native object under the op (`a.add(b)` makes a temporary
// Scalar(1); `a.add(b, one).mul(a)` leaves the sum to the finalizer once mul has its handle). Without the deferred
// dispose of native/torch_compat.cpp the Scalar loop failed within ~30,000 adds here ("Expected false to be true"
// from c10::Scalar::toFloat; the CI flake of 2026-12-02), and the tensor pattern is the SIGSEGV in
// at::TensorIteratorBase::build seen in the test host. The project never does this (the guard of every test, and
// TorchDisposalTests); this test does it on purpose to prove the safety net for a user's run and the counters.
[DeliberateFinalizerUse]
public class TorchFinalizerSafetyNetTests : TorchGuarded
{
    [Fact]
    public void ObjectsFreedByTheFinalizerDuringOpsAreCountedAndSafe()
    {
        var start = TorchFinalizers.Settle();
        using var a = ones(4);
        using var b = ones(4);
        using var one = 1.ToScalar();
        using var stop = new CancellationTokenSource();
        var churn = new Thread(() =>
        {
            var keep = new List<byte[]>();
            while (!stop.IsCancellationRequested) { keep.Add(new byte[1000]); if (keep.Count > 1000) keep.Clear(); }
        });
        churn.Start();
        try
        {
            for (int i = 1; i <= 200_000; i++)
            {
                using var c = a.add(b);                 // TorchSharp's own Scalar(1), never disposed
                using var d = a.add(b, one).mul(a);     // the sum is garbage once mul has its handle
                if (i % 50_000 == 0)
                {
                    GC.Collect(0, GCCollectionMode.Forced, blocking: false);
                    using var cs = c.sum();
                    using var ds = d.sum();
                    Assert.Equal(8f, cs.item<float>());
                    Assert.Equal(8f, ds.item<float>());
                }
            }
        }
        finally { stop.Cancel(); churn.Join(); }

        var end = TorchFinalizers.Settle();
        Assert.True(end.Scalars > start.Scalars, "no Scalar was counted as finalized: the compat library's scalar dispose is not in place");
        Assert.True(end.Tensors > start.Tensors, "no Tensor was counted as finalized: the compat library's tensor dispose is not in place");
        // The deferral is the compat library's, reached through TorchSharp's own P/Invoke.
        var compat = System.Runtime.InteropServices.NativeLibrary.Load("libpz_torch_compat.so");
        unsafe
        {
            var deferred = (delegate* unmanaged<long>)System.Runtime.InteropServices.NativeLibrary.GetExport(compat, "pz_deferred_scalars");
            Assert.True(deferred() > 0, "no Scalar went through the deferred dispose: the TorchSharp patch is not in place");
        }
        AcceptFinalized();
    }

    [Fact]
    public void DisposedObjectsAreNotCounted()
    {
        var start = TorchFinalizers.Settle();
        using var one = 1.ToScalar();
        for (int i = 0; i < 1000; i++)
        {
            using var scope = NewDisposeScope();
            using var half = 0.5.ToScalar();
            var x = ones(4).add(ones(4), one).mul(half);
            Assert.Equal(4f, x.sum().item<float>());
        }
        Assert.Equal(start, TorchFinalizers.Settle());
    }

    [Fact]
    public void ALeakFailsTheGuard()
    {
        var guard = new LeakProbe();
        MakeGarbage();
        var e = Assert.Throws<Xunit.Sdk.XunitException>(guard.Dispose);
        Assert.Contains("1 tensor(s) and 0 scalar(s) were freed by the .NET finalizer", e.Message);
        AcceptFinalized();

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        static void MakeGarbage() => ones(4);   // never disposed, outside any scope
    }

    sealed class LeakProbe : TorchGuarded;
}

/// <summary>The compat library fixes glibc's mmap threshold at 1 MiB when TorchSharp loads (native/torch_compat.cpp, 3).</summary>
public class MallocThresholdTests : TorchGuarded
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc")] static extern nint Malloc(nuint size);
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "free")] static extern void Free(nint p);

    /// <summary>glibc's chunk header: the size word just before the pointer, bit 1 = IS_MMAPPED.</summary>
    static unsafe bool Mmapped(nint p) => (((nuint*)p)[-1] & 2) != 0;

    [Fact]
    public void BlocksAboveOneMibAreMappedEvenAfterALargerOneIsFreed()
    {
        Assert.Null(Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_"));
        using (var t = ones(4)) using (var sum = t.sum()) Assert.Equal(4f, sum.item<float>());   // TorchSharp (and so the compat library) loaded
        // With glibc's dynamic threshold, freeing a mapped 8 MiB block raises the threshold to 8 MiB and 4 MiB blocks
        // after it come from the heap, where freed memory stays with the process. Free heap chunks that earlier tests
        // left (coalesced garbage) serve any request they fit, whatever the threshold, so blocks are taken until
        // one is mapped (the address space is reserved, never touched): with the threshold fixed at 1 MiB that
        // happens as soon as the heap's free chunks are used up; with the dynamic one, the heap grows instead.
        var held = new List<nint>();
        try
        {
            nint big = TakeUntilMapped(8 << 20, held);
            Assert.True(big != 0, "no 8 MiB block was mapped");
            held.Remove(big);
            Free(big);
            Assert.True(TakeUntilMapped(4 << 20, held) != 0, "4 MiB blocks came from the heap: the mmap threshold is not fixed at 1 MiB");
            nint next = Malloc(4 << 20), small = Malloc(512 << 10);
            held.Add(next);
            held.Add(small);
            Assert.True(Mmapped(next), "a 4 MiB block after a mapped one came from the heap");
            Assert.False(Mmapped(small), "a 512 KiB block was mapped: the threshold is below 1 MiB");
        }
        finally { foreach (var p in held) Free(p); }
    }

    [Fact]
    public void InsideForwardScopesBlocksUpTo32MibComeFromTheHeapAndAfterThemAreMappedAgain()
    {
        Assert.Null(Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_"));
        using (var t = ones(4)) using (var sum = t.sum()) Assert.Equal(4f, sum.item<float>());
        var held = new List<nint>();
        try
        {
            using (NativeHeap.ReuseForForward())
            {
                using (NativeHeap.ReuseForForward()) { }   // an inner scope's end keeps the outer one's threshold
                nint inside = Malloc(16 << 20), above = Malloc(40 << 20);
                held.Add(inside);
                held.Add(above);
                Assert.False(Mmapped(inside), "a 16 MiB block inside a forward scope was mapped");
                Assert.True(Mmapped(above), "a 40 MiB block inside a forward scope came from the heap");
            }
            Assert.True(TakeUntilMapped(4 << 20, held) != 0, "4 MiB blocks after the scope came from the heap: the 1 MiB threshold is not back");
            nint next = Malloc(4 << 20);
            held.Add(next);
            Assert.True(Mmapped(next), "a 4 MiB block after the scope came from the heap");
        }
        finally { foreach (var p in held) Free(p); }
    }

    /// <summary>Allocates blocks of <paramref name="size"/> (kept in <paramref name="held"/>) until one is mapped; 0 when none of 256 is.</summary>
    static nint TakeUntilMapped(nuint size, List<nint> held)
    {
        for (int i = 0; i < 256; i++)
        {
            nint p = Malloc(size);
            held.Add(p);
            if (Mmapped(p)) return p;
        }
        return 0;
    }
}
