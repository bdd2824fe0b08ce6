// `score` with screen windows: how well the search's screen fitness on N windows ranks a metric library like the
// full protocol does.
using PrunerZero.Search;

namespace PrunerZero.Workflows;

/// <summary>One screen evaluation of a library line: what <see cref="PruningFitness.Screen"/> returns for that window count.</summary>
public sealed record ScreenScore(int Windows, bool Valid, double? Perplexity, string? Reason, double Seconds);

/// <summary>
/// How well the screen on <paramref name="Windows"/> windows ranks the library like the full protocol: over the
/// <paramref name="Candidates"/> lines valid under both, Spearman's ρ (average ranks for ties), Kendall's τ-b and
/// how many of the top-k by screen are in the top-k by full perplexity. Seconds are means over those lines.
/// </summary>
public sealed record FidelityRow(int Windows, int Candidates, double? Spearman, double? KendallTauB, int TopK, int? TopKOverlap,
    double ScreenSecondsPerCandidate, double FullSecondsPerCandidate);

public static class ScreenFidelity
{
    /// <summary>Rank agreement per window count over the lines valid under both the screen and the full protocol.</summary>
    public static List<FidelityRow> Of(IReadOnlyList<ScoreRow> rows, IReadOnlyList<int> windows, int topK)
    {
        var result = new List<FidelityRow>();
        for (int i = 0; i < windows.Count; i++)
        {
            var both = rows.Where(r => r.Valid && r.Perplexity is not null && r.Screens[i] is { Valid: true, Perplexity: not null }).ToList();
            double[] screen = both.Select(r => r.Screens[i].Perplexity!.Value).ToArray();
            double[] full = both.Select(r => r.Perplexity!.Value).ToArray();
            int k = Math.Min(topK, Math.Max(both.Count, 1));
            result.Add(new FidelityRow(windows[i], both.Count,
                RankCorrelation.Spearman(screen, full), RankCorrelation.KendallTauB(screen, full),
                k, both.Count == 0 ? null : RankCorrelation.TopKOverlap(screen, full, k),
                both.Count == 0 ? 0 : both.Average(r => r.Screens[i].Seconds),
                both.Count == 0 ? 0 : both.Average(r => r.FullSeconds ?? r.Seconds)));
        }
        return result;
    }
}
