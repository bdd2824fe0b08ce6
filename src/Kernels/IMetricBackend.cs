// The single seam between callers (Runtime, Search) and where metrics run. Shapes: weight, g, scores and
// prune are (R, K) row-major; x is (K). g may be empty when !e.UsesG, x may be empty when !e.UsesX.
namespace PrunerZero.Kernels;

public interface IMetricBackend : IDisposable
{
    string Name { get; }
    void Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x, int rows, int cols, Span<float> scores);
    void MaskUnstructured(ReadOnlySpan<float> scores, int rows, int cols, double sparsity, Span<byte> prune);
    void MaskNM(ReadOnlySpan<float> scores, int rows, int cols, int n, int m, Span<byte> prune);
}

/// <summary>Fused Vector256 scoring and radix-select masks on the CPU, parallel over rows.</summary>
public sealed class CpuBackend : IMetricBackend
{
    public string Name => "cpu";
    public void Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x, int rows, int cols, Span<float> scores)
        => CpuFusedScorer.Score(e, weight, g, x, rows, cols, scores);
    public void MaskUnstructured(ReadOnlySpan<float> scores, int rows, int cols, double sparsity, Span<byte> prune)
        => Masks.Unstructured(scores, rows, cols, sparsity, prune);
    public void MaskNM(ReadOnlySpan<float> scores, int rows, int cols, int n, int m, Span<byte> prune)
        => Masks.NM(scores, rows, cols, n, m, prune);
    public void Dispose() { }
}
