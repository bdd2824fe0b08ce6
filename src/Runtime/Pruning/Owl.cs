using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// OWL, outlier-weighted layerwise sparsity (Yin et al. 2023; the unstructured path of luuyin/OWL's
/// prune_wanda_outlier): per block, D = the share (in percent) of its Wanda scores |W_ij|·sqrt(X_j) above
/// <c>m</c> × the block's mean score, over all its linears together, X measured on the dense model; D is scaled
/// linearly onto [0, 2λ], the block's density is that minus its mean over blocks plus (1 − S), and every linear
/// of a block gets the block's sparsity 1 − density. The block sparsities so lie in [S − λ, S + λ] with mean S.
/// </summary>
public static class Owl
{
    public const double DefaultM = 5, DefaultLambda = 0.08;

    public static string Name(double m, double lambda) =>
        FormattableString.Invariant($"owl(m={m},lambda={lambda})");

    /// <summary>The outlier ratio D (percent) of every block.</summary>
    public static double[] OutlierRatios(LlamaModel model, DenseX x, double m)
    {
        using var _ = no_grad();
        var ratios = new double[model.Blocks.Count];
        float[] buffer = [];
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            using var scope = NewDisposeScope();
            var block = model.Blocks[i].Float32();
            double sum = 0;
            long count = 0;
            foreach (var k in LinearKinds.All)
            {
                var s = Scores(block[k], x[i, k], ref buffer);
                foreach (var v in s) sum += v;
                count += s.Length;
            }
            // OWL's threshold: m × the mean score, compared in float32 as torch compares a float32 tensor with it.
            float threshold = (float)(m * (float)(sum / count));
            long above = 0;
            foreach (var k in LinearKinds.All)
                foreach (var v in Scores(block[k], x[i, k], ref buffer)) if (v > threshold) above++;
            ratios[i] = 100.0 * above / count;
        }
        return ratios;
    }

    /// <summary>OWL's per-block sparsities for target <paramref name="target"/> (see the class summary).</summary>
    public static SparsityAllocation Allocate(LlamaModel model, DenseX x, double target, double m = DefaultM, double lambda = DefaultLambda) =>
        FromRatios(OutlierRatios(model, x, m), target, m, lambda);

    public static SparsityAllocation FromRatios(double[] d, double target, double m, double lambda)
    {
        if (!(m > 0)) throw new PrunerZeroException($"OWL's outlier threshold m must be positive, got {m}");
        if (!(lambda >= 0 && lambda < 1)) throw new PrunerZeroException($"OWL's spread lambda must be in [0, 1), got {lambda}");
        double min = d.Min(), max = d.Max();
        // Every block equally outlier-heavy: OWL's scaling divides by zero; the only profile with mean S is uniform.
        if (max == min) return SparsityAllocation.PerBlock(Name(m, lambda), target, d.Select(_ => target).ToArray());
        var scaled = d.Select(v => (v - min) * (1 / (max - min) * lambda * 2)).ToArray();
        double mean = scaled.Average();
        var sparsity = scaled.Select(v => 1 - (v - mean + (1 - target))).ToArray();
        return SparsityAllocation.PerBlock(Name(m, lambda), target, sparsity);
    }

    /// <summary>|W_ij|·sqrt(X_j) of one float32 weight, in float32 as OWL computes it, into <paramref name="buffer"/>.</summary>
    static ReadOnlySpan<float> Scores(Tensor weight, float[] x, ref float[] buffer)
    {
        if (weight.device_type != TorchSharp.DeviceType.CPU || !weight.is_contiguous()) weight = weight.cpu().contiguous();   // in the caller's scope
        var w = MemoryMarshal.Cast<byte, float>(weight.bytes);
        int cols = (int)weight.shape[1];
        if (buffer.Length < w.Length) buffer = new float[w.Length];
        var sx = new float[cols];
        for (int j = 0; j < cols; j++) sx[j] = MathF.Sqrt(x[j]);
        for (int i = 0; i < w.Length; i++) buffer[i] = MathF.Abs(w[i]) * sx[i % cols];
        return buffer.AsSpan(0, w.Length);
    }
}
