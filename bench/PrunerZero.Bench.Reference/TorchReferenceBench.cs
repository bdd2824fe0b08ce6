// (b) The reference path as a benchmark: |weight| → metric node by node → stable per-row sort → scatter of
// the lowest k into a bool mask, on tensors made once per case in GlobalSetup (as PyTorch would hold them).
// One dispose scope per invocation frees every temporary, as a Python loop over layers lets them go.
using BenchmarkDotNet.Attributes;
using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Bench.Reference;

public class TorchReferenceBench
{
    public static IEnumerable<string> Shapes => BenchOptions.ShapeParams;
    public static IEnumerable<string> MetricNames => BenchOptions.MetricParams;

    [ParamsSource(nameof(Shapes))] public string Shape { get; set; } = "";
    [ParamsSource(nameof(MetricNames))] public string Metric { get; set; } = "";

    Expr _expr = null!;
    Tensor _weight = null!, _g = null!, _x = null!; // (R, K), (R, K), (1, K)
    double _sparsity;

    [GlobalSetup]
    public void Setup()
    {
        var shape = LayerShape.Parse(Shape);
        var d = LayerData.For(shape);
        _expr = BenchMetrics.Get(Metric);
        _sparsity = BenchOptions.Current.Sparsity;
        _weight = torch.tensor(d.W, [shape.Rows, shape.Cols]);
        _g = torch.tensor(d.G, [shape.Rows, shape.Cols]);
        _x = torch.tensor(d.X, [1, shape.Cols]);
    }

    [Benchmark(Description = "b: reference (torch ops + sort + scatter)")]
    public void TorchReference()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        TorchMetric.ScoreAndMask(_expr, _weight, _g, _x, _sparsity);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _weight?.Dispose(); _g?.Dispose(); _x?.Dispose();
    }
}
