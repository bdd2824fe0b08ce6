using System.Diagnostics;
using System.Runtime.InteropServices;
using PrunerZero.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// Score, check, mask: one linear's prune mask from a metric through a Kernels back end, the weight unchanged.
/// The one selection that pruning and mask fingerprints share. Buffers are reused across layers.
/// </summary>
public sealed class MaskSelector(IMetricBackend backend)
{
    float[] _scores = [];
    byte[] _prune = [];

    /// <summary>
    /// Selects the prune mask of <paramref name="weight"/> (R, K), read by <see cref="Mask"/>; returns the reason when
    /// the metric is invalid on it, and the seconds spent. The kernels read the tensors' memory: they must be
    /// contiguous CPU float32 tensors.
    /// </summary>
    public (string? Invalid, (double Scoring, double Masking) Seconds) Select(Tensor weight, Tensor? g, float[]? x, Expr metric,
        PruneTarget target, string name)
    {
        RequireHostFloat32(weight, name);
        if (g is not null) RequireHostFloat32(g, name + " G");
        int rows = (int)weight.shape[0], cols = (int)weight.shape[1], n = rows * cols;
        if (_scores.Length < n) { _scores = new float[n]; _prune = new byte[n]; }
        var w = MemoryMarshal.Cast<byte, float>(weight.bytes);
        ReadOnlySpan<float> gs = g is null ? default : MemoryMarshal.Cast<byte, float>(g.bytes);
        var scores = _scores.AsSpan(0, n);
        var prune = _prune.AsSpan(0, n);

        var sw = Stopwatch.StartNew();
        MetricValidity validity;
        using (Nvtx.Range("scoring"))
        {
            backend.Score(metric, w, gs, x, rows, cols, scores);
            validity = ScoreCheck.Check(scores, rows, cols);
        }
        double scoring = sw.Elapsed.TotalSeconds;
        if (!validity.Valid) return ($"{name}: {validity.Reason}", (scoring, 0));

        sw.Restart();
        using (Nvtx.Range("masking"))
        {
            if (target.IsNM) backend.MaskNM(scores, rows, cols, target.N, target.M, prune);
            else backend.MaskUnstructured(scores, rows, cols, target.Sparsity, prune);
        }
        return (null, (scoring, sw.Elapsed.TotalSeconds));
    }

    /// <summary>The mask of the last <see cref="Select"/> (1 = pruned), row-major over <paramref name="weight"/>'s shape.</summary>
    public ReadOnlySpan<byte> Mask(Tensor weight) => _prune.AsSpan(0, (int)weight.shape[0] * (int)weight.shape[1]);

    static void RequireHostFloat32(Tensor t, string name)
    {
        if (t.device_type != DeviceType.CPU || t.dtype != ScalarType.Float32 || !t.is_contiguous())
            throw new InvalidOperationException($"{name}: the scoring kernels need a contiguous CPU float32 tensor, got {t.dtype} on {t.device} (contiguous: {t.is_contiguous()})");
    }
}
