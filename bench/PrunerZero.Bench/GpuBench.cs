// The ILGPU CUDA path, run only where a CUDA device exists (GpuDevice.TryOpen). What IlgpuBackend offers
// today is a host-span API: every Score and MaskUnstructured call allocates device buffers and copies W, G,
// X in and scores out (and the scores back in for the mask, the mask out). "api" therefore INCLUDES all
// PCIe copies and allocations. To show the kernels themselves, the device-resident rows launch the public
// IlgpuKernels.MaskRows and a floor kernel on buffers uploaded once in GlobalSetup; "h2d" is the cost of
// uploading W (and G) once, for reading the api figure. A device-resident Score would need an
// IlgpuBackend overload taking ArrayViews (the node plan that computes mms/zsn statistics is internal).
using BenchmarkDotNet.Attributes;
using ILGPU;
using ILGPU.Runtime;
using PrunerZero.Kernels;

namespace PrunerZero.Bench;

/// <summary>The one backend of the process, opened before the GPU suite and shared by its cases.</summary>
public static class GpuDevice
{
    public static IlgpuBackend? Backend { get; private set; }

    /// <summary>CUDA when emulate is false; ILGPU's CPU emulator otherwise. Returns the reason when unavailable.</summary>
    public static string? TryOpen(bool emulate)
    {
        if (Backend is not null) return null;
        try { Backend = IlgpuBackend.Create(preferCuda: !emulate); return null; }
        catch (InvalidOperationException ex) { return ex.Message; }
    }

    public static string Describe() => Backend is null ? "none" : $"{Backend.Name}: {Backend.Accelerator.Name}";

    public static void Close() { Backend?.Dispose(); Backend = null; }
}

public static class FloorKernels
{
    /// <summary>mask[i] = (|w[i]| + g[i]) &lt; t when useG, else |w[i]| &lt; t: read W (and G) once, write a byte.</summary>
    public static void Floor(Index1D i, ArrayView<float> w, ArrayView<float> g, int useG, float t, ArrayView<byte> mask)
    {
        float v = MathF.Abs(w[i]);
        if (useG != 0) v += g[i];
        mask[i] = v < t ? (byte)1 : (byte)0;
    }
}

public class GpuBench
{
    public static IEnumerable<string> Shapes => BenchOptions.ShapeParams;
    public static IEnumerable<string> MetricNames => BenchOptions.MetricParams;

    [ParamsSource(nameof(Shapes))] public string Shape { get; set; } = "";
    [ParamsSource(nameof(MetricNames))] public string Metric { get; set; } = "";

    IlgpuBackend _gpu = null!;
    Accelerator _acc = null!;
    Expr _expr = null!;
    LayerData _data = null!;
    float[] _scores = null!;
    byte[] _prune = null!;
    int _k;
    double _sparsity;
    MemoryBuffer1D<float, Stride1D.Dense> _dW = null!, _dG = null!, _dScores = null!;
    MemoryBuffer1D<byte, Stride1D.Dense> _dMask = null!;
    Action<Index1D, ArrayView<float>, int, int, ArrayView<byte>> _maskRows = null!;
    Action<Index1D, ArrayView<float>, ArrayView<float>, int, float, ArrayView<byte>> _floor = null!;

    [GlobalSetup]
    public void Setup()
    {
        _gpu = GpuDevice.Backend ?? throw new InvalidOperationException("GpuBench needs GpuDevice.TryOpen first");
        _acc = _gpu.Accelerator;
        _acc.Bind(); // BenchmarkDotNet may run cases on a thread other than the one that created the context
        _expr = BenchMetrics.Get(Metric);
        _data = LayerData.For(LayerShape.Parse(Shape));
        long n = _data.Shape.Count;
        _scores = new float[n];
        _prune = new byte[n];
        _sparsity = BenchOptions.Current.Sparsity;
        _k = Masks.PrunedPerRow(_data.Shape.Cols, _sparsity);

        _dW = _acc.Allocate1D(_data.W);
        _dG = _acc.Allocate1D(_data.G);
        // Device-resident mask input: the same scores the CPU path computes.
        CpuFusedScorer.Score(_expr, _data.W, _data.G, _data.X, _data.Shape.Rows, _data.Shape.Cols, _scores);
        _dScores = _acc.Allocate1D(_scores);
        _dMask = _acc.Allocate1D<byte>(n);
        _maskRows = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, int, ArrayView<byte>>(IlgpuKernels.MaskRows);
        _floor = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int, float, ArrayView<byte>>(FloorKernels.Floor);
        _acc.Synchronize();
    }

    [Benchmark(Description = "gpu: api score+mask (copies incl.)")]
    public void ApiScoreAndMask()
    {
        var s = _data.Shape;
        _gpu.Score(_expr, _data.W, _data.G, _data.X, s.Rows, s.Cols, _scores);
        _gpu.MaskUnstructured(_scores, s.Rows, s.Cols, _sparsity, _prune);
    }

    [Benchmark(Description = "gpu: device mask (MaskRows)")]
    public void DeviceMask()
    {
        _maskRows(_data.Shape.Rows, _dScores.View, _data.Shape.Cols, _k, _dMask.View);
        _acc.Synchronize();
    }

    [Benchmark(Description = "gpu: device floor")]
    public void DeviceFloor()
    {
        _floor((int)_data.Shape.Count, _dW.View, _dG.View, _expr.UsesG ? 1 : 0, 0.7f, _dMask.View);
        _acc.Synchronize();
    }

    [Benchmark(Description = "gpu: h2d W(+G)")]
    public void HostToDevice()
    {
        _dW.View.CopyFromCPU(_data.W);
        if (_expr.UsesG) _dG.View.CopyFromCPU(_data.G);
        _acc.Synchronize();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _dW?.Dispose(); _dG?.Dispose(); _dScores?.Dispose(); _dMask?.Dispose();
    }
}
