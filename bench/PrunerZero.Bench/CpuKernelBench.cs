// (a) This project's CPU production path: the metric compiled once (CpuFusedScorer.Compile) into a fused
// Vector256 pass, then the per-row radix-select mask (Masks.Unstructured, what CpuBackend.MaskUnstructured
// calls). Scores and mask buffers are allocated in GlobalSetup; the measured calls allocate nothing large.
// Score and Mask alone are measured too, to show which half dominates.
using BenchmarkDotNet.Attributes;
using PrunerZero.Kernels;

namespace PrunerZero.Bench;

public class CpuKernelBench
{
    public static IEnumerable<string> Shapes => BenchOptions.ShapeParams;
    public static IEnumerable<string> MetricNames => BenchOptions.MetricParams;

    [ParamsSource(nameof(Shapes))] public string Shape { get; set; } = "";
    [ParamsSource(nameof(MetricNames))] public string Metric { get; set; } = "";

    LayerData _data = null!;
    CpuFusedKernel _kernel = null!;
    float[] _scores = null!; // (R, K)
    byte[] _prune = null!;   // (R, K), 1 = pruned
    double _sparsity;

    [GlobalSetup]
    public void Setup()
    {
        var shape = LayerShape.Parse(Shape);
        _data = LayerData.For(shape);
        _kernel = CpuFusedScorer.Compile(BenchMetrics.Get(Metric));
        _scores = new float[shape.Count];
        _prune = new byte[shape.Count];
        _sparsity = BenchOptions.Current.Sparsity;
        // Mask() ranks these scores; ScoreAndMask/Score overwrite them with the same values.
        _kernel.Score(_data.W, _data.G, _data.X, shape.Rows, shape.Cols, _scores);
    }

    [Benchmark(Description = "a: score+mask")]
    public void ScoreAndMask()
    {
        var s = _data.Shape;
        _kernel.Score(_data.W, _data.G, _data.X, s.Rows, s.Cols, _scores);
        Masks.Unstructured(_scores, s.Rows, s.Cols, _sparsity, _prune);
    }

    [Benchmark(Description = "a: score only")]
    public void Score()
    {
        var s = _data.Shape;
        _kernel.Score(_data.W, _data.G, _data.X, s.Rows, s.Cols, _scores);
    }

    [Benchmark(Description = "a: mask only")]
    public void Mask()
    {
        var s = _data.Shape;
        Masks.Unstructured(_scores, s.Rows, s.Cols, _sparsity, _prune);
    }

    [GlobalCleanup]
    public void Cleanup() { _scores = null!; _prune = null!; }
}
