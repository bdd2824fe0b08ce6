using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>A channel (input column) and its share of the linear's Σ scaler_row.</summary>
public sealed record ChannelShare(int Channel, double Share);

/// <summary>
/// The X profile of one linear on the calibration data. <see cref="Max"/> and <see cref="Median"/> are of Wanda's
/// scaler_row s_j (Σ over calibration tokens of x_j², divided by nsamples); <see cref="MaxOverMedian"/> = Max / Median;
/// <see cref="ExcessKurtosis"/> is of the channel norms sqrt(s_j) over the columns (<see cref="OutlierStats.ExcessKurtosis"/>);
/// <see cref="Top"/>: the channels with the largest s_j, each with s_j / Σ s.
/// </summary>
public sealed record LinearOutliers(LinearKind Kind, int Columns, double Max, double Median, double MaxOverMedian, double ExcessKurtosis,
                                    IReadOnlyList<ChannelShare> Top);

/// <summary>
/// The residual hidden state a block outputs, on the calibration windows: <see cref="FirstNorm"/> is the mean over windows
/// of ‖h[w, 0, :]‖₂ (position 0 of each window), <see cref="OtherMedianNorm"/> the median of ‖h[w, t, :]‖₂ over every
/// window and every position t ≥ 1, <see cref="Ratio"/> = FirstNorm / OtherMedianNorm (massive activations and
/// attention sinks show as a large ratio); <see cref="MaxAbs"/> the largest |h[w, t, c]| with its channel and position.
/// </summary>
public sealed record FirstTokenStats(double FirstNorm, double OtherMedianNorm, double Ratio, double MaxAbs, int MaxAbsChannel, int MaxAbsPosition);

public sealed record BlockOutliers(int Layer, FirstTokenStats Output, IReadOnlyList<LinearOutliers> Linears);

public sealed record OutlierReport(IReadOnlyList<BlockOutliers> Blocks);

/// <summary>
/// Outlier statistics of a model on its calibration windows: per block and prunable linear the profile of Wanda's X
/// (how much a few input channels dominate), and per block the first-token norms of the residual stream. The hidden
/// states are moved through the decoder by <see cref="BlockActivations"/>, one block in float32 at a time.
/// </summary>
public static class OutlierStats
{
    public static OutlierReport Compute(LlamaModel model, CalibrationSet calib, int top, IProgress<string>? progress = null)
    {
        if (top < 1) throw new PrunerZeroException($"{UserError.P("top")} must be at least 1, got {top}");
        var blocks = new List<BlockOutliers>();
        using var _ = no_grad();
        using var acts = new BlockActivations(model, calib);
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            progress?.Report($"outlier statistics: block {i + 1}/{model.Blocks.Count}");
            var linears = new List<LinearOutliers>();
            using (var scope = NewDisposeScope())
            {
                var working = model.Blocks[i].Float32();
                using var stats = new XStats();
                acts.Advance(i, working, stats.Add);   // X of block i on the way to its output
                foreach (var k in LinearKinds.All) linears.Add(Profile(k, stats.Finish(k, calib.NSamples), top));
            }
            blocks.Add(new BlockOutliers(i, FirstToken(acts.Chunks), linears));
        }
        return new OutlierReport(blocks);
    }

    /// <summary>The profile of one linear's scaler_row (see <see cref="LinearOutliers"/>).</summary>
    public static LinearOutliers Profile(LinearKind kind, IReadOnlyList<float> scalerRow, int top)
    {
        if (scalerRow.Count == 0) throw new ArgumentException("empty scaler_row", nameof(scalerRow));
        var s = scalerRow.Select(v => (double)v).ToArray();
        double max = s.Max(), median = Median(s), total = s.Sum();
        var norms = s.Select(Math.Sqrt).ToArray();
        var topChannels = Enumerable.Range(0, s.Length).OrderByDescending(j => s[j]).ThenBy(j => j).Take(top)
            .Select(j => new ChannelShare(j, total > 0 ? s[j] / total : double.NaN)).ToList();
        return new LinearOutliers(kind, s.Length, max, median, max / median, ExcessKurtosis(norms), topChannels);
    }

    /// <summary>The median (the mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var v = values.Order().ToArray();
        int n = v.Length;
        return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }

    /// <summary>
    /// Excess kurtosis with population moments: m₄ / m₂² − 3, m_k = mean((v − mean(v))^k). 0 for a Gaussian, −1.2 for
    /// a uniform, about n for one value far above n − 1 equal ones; NaN when every value is equal (m₂ = 0).
    /// </summary>
    public static double ExcessKurtosis(IReadOnlyList<double> values)
    {
        int n = values.Count;
        if (n == 0) return double.NaN;
        double mean = values.Average();
        double m2 = 0, m4 = 0;
        foreach (var x in values)
        {
            double d = x - mean, d2 = d * d;
            m2 += d2;
            m4 += d2 * d2;
        }
        m2 /= n;
        m4 /= n;
        return m2 > 0 ? m4 / (m2 * m2) - 3 : double.NaN;
    }

    /// <summary>First-token norms and the largest activation of hidden states given as (windows, seqlen, hidden) chunks; one dispose scope per chunk.</summary>
    public static FirstTokenStats FirstToken(IEnumerable<Tensor> chunks)
    {
        var first = new List<double>();
        var others = new List<double>();
        double maxAbs = -1;
        int maxChannel = -1, maxPosition = -1;
        foreach (var h in chunks)
        {
            using var scope = NewDisposeScope();
            long t = h.shape[1], c = h.shape[2];
            if (t < 2) throw new PrunerZeroException($"first-token statistics need seqlen at least 2, got {t}");
            var norms = h.to(ScalarType.Float64).Squared().sum(-1).sqrt().cpu();   // (windows, seqlen)
            var flat = norms.data<double>().ToArray();
            for (int i = 0; i < flat.Length; i++) (i % t == 0 ? first : others).Add(flat[i]);
            var abs = h.abs().reshape(-1);
            long at = abs.argmax().item<long>();
            double m = abs[at].to(ScalarType.Float64).item<double>();
            if (m > maxAbs)
            {
                maxAbs = m;
                maxChannel = (int)(at % c);
                maxPosition = (int)(at / c % t);
            }
        }
        double firstMean = first.Average(), otherMedian = Median(others);
        return new FirstTokenStats(firstMean, otherMedian, firstMean / otherMedian, maxAbs, maxChannel, maxPosition);
    }
}
