// Whether a metric's scores can be used to prune: all finite, and carrying some ranking.
namespace PrunerZero.Kernels;

public readonly record struct MetricValidity(bool Valid, string? Reason, long NonFinite = 0)
{
    public static readonly MetricValidity Ok = new(true, null);
}

public static class ScoreCheck
{
    /// <summary>
    /// Invalid when any score is NaN/±Inf (counted), or when every row is constant (no ranking at all:
    /// the mask would be decided by column index alone).
    /// </summary>
    public static MetricValidity Check(ReadOnlySpan<float> scores, int rows, int cols)
    {
        Masks.CheckShape(scores.Length, rows, cols, scores.Length);
        long nonFinite = 0;
        foreach (var v in scores) if (!float.IsFinite(v)) nonFinite++;
        if (nonFinite > 0)
            return new(false, $"{nonFinite} of {scores.Length} scores are not finite (NaN or Inf)", nonFinite);
        for (int r = 0; r < rows; r++)
        {
            var row = scores.Slice(r * cols, cols);
            float first = row[0];
            foreach (var v in row) if (v != first) return MetricValidity.Ok;
        }
        return new(false, "scores carry no ranking: every row is constant");
    }
}
