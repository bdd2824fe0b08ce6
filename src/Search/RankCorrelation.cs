// Rank agreement between two scorings of the same candidates (screen fitness against the full protocol).
// Small and self-contained on purpose: the formulas are a few lines each and no statistics library is
// referenced by the solution, so they are written out here and checked against hand-computed cases
// (RankCorrelationTests).
namespace PrunerZero.Search;

public static class RankCorrelation
{
    /// <summary>
    /// Ranks 1..n of <paramref name="values"/> (ascending), ties given the average of the ranks they span
    /// ("fractional" ranking, as scipy.stats.rankdata's default): [10, 20, 20, 30] → [1, 2.5, 2.5, 4].
    /// </summary>
    public static double[] AverageRanks(IReadOnlyList<double> values)
    {
        CheckFinite(values, nameof(values));
        int n = values.Count;
        var order = Enumerable.Range(0, n).OrderBy(i => values[i]).ToArray();
        var ranks = new double[n];
        for (int start = 0; start < n;)
        {
            int end = start;
            while (end + 1 < n && values[order[end + 1]] == values[order[start]]) end++;
            double rank = (start + end) / 2.0 + 1;   // mean of the 1-based ranks start+1 .. end+1
            for (int j = start; j <= end; j++) ranks[order[j]] = rank;
            start = end + 1;
        }
        return ranks;
    }

    /// <summary>
    /// Spearman's ρ: Pearson's correlation of the average ranks (exact with ties, unlike 1 − 6Σd²/(n(n²−1)),
    /// which holds only without them). Null when it is undefined: fewer than 2 values, or one side all tied.
    /// </summary>
    public static double? Spearman(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        CheckPair(a, b);
        if (a.Count < 2) return null;
        return Pearson(AverageRanks(a), AverageRanks(b));
    }

    /// <summary>Pearson's correlation; null when either side has zero variance.</summary>
    public static double? Pearson(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        CheckPair(a, b);
        int n = a.Count;
        if (n < 2) return null;
        double ma = a.Average(), mb = b.Average();
        double sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < n; i++)
        {
            double da = a[i] - ma, db = b[i] - mb;
            sab += da * db;
            saa += da * da;
            sbb += db * db;
        }
        if (saa == 0 || sbb == 0) return null;
        return Math.Clamp(sab / Math.Sqrt(saa * sbb), -1, 1);
    }

    /// <summary>
    /// Kendall's τ-b = (C − D) / √((n0 − n1)(n0 − n2)), n0 = n(n−1)/2, n1 and n2 the pairs tied in a and in b
    /// (scipy.stats.kendalltau's default). O(n²): meant for the tens to hundreds of candidates of a library.
    /// Null when undefined (fewer than 2 values, or one side all tied).
    /// </summary>
    public static double? KendallTauB(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        CheckPair(a, b);
        CheckFinite(a, nameof(a));
        CheckFinite(b, nameof(b));
        int n = a.Count;
        long concordant = 0, discordant = 0, tiedA = 0, tiedB = 0;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
            {
                int sa = Math.Sign(a[i] - a[j]), sb = Math.Sign(b[i] - b[j]);
                if (sa == 0) tiedA++;
                if (sb == 0) tiedB++;
                if (sa != 0 && sb != 0)
                {
                    if (sa == sb) concordant++;
                    else discordant++;
                }
            }
        long n0 = (long)n * (n - 1) / 2;
        double denom = Math.Sqrt((double)(n0 - tiedA) * (n0 - tiedB));
        if (n < 2 || denom == 0) return null;
        return Math.Clamp((concordant - discordant) / denom, -1, 1);
    }

    /// <summary>
    /// How many of the k lowest by <paramref name="a"/> are among the k lowest by <paramref name="b"/>
    /// (0..k); k is capped at the count. Ties at the k-th place are broken by position (the earlier index first).
    /// </summary>
    public static int TopKOverlap(IReadOnlyList<double> a, IReadOnlyList<double> b, int k)
    {
        CheckPair(a, b);
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be at least 1");
        k = Math.Min(k, a.Count);
        var topA = Enumerable.Range(0, a.Count).OrderBy(i => a[i]).ThenBy(i => i).Take(k).ToHashSet();
        return Enumerable.Range(0, b.Count).OrderBy(i => b[i]).ThenBy(i => i).Take(k).Count(topA.Contains);
    }

    static void CheckPair(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        if (a.Count != b.Count) throw new ArgumentException($"the two scorings have {a.Count} and {b.Count} values; they must score the same candidates");
    }

    static void CheckFinite(IReadOnlyList<double> v, string name)
    {
        for (int i = 0; i < v.Count; i++)
            if (!double.IsFinite(v[i])) throw new ArgumentException($"{name}[{i}] is {v[i]}; ranks need finite values", name);
    }
}
