using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

/// <summary>Rank statistics against cases computed by hand (closed forms in the comments).</summary>
public class RankCorrelationTests
{
    [Fact]
    public void Average_ranks_share_the_mean_of_the_tied_places()
    {
        Assert.Equal([1, 2.5, 2.5, 4], RankCorrelation.AverageRanks([10, 20, 20, 30]));
        Assert.Equal([3, 1, 2], RankCorrelation.AverageRanks([3.5, -1, 0]));
        Assert.Equal([2, 2, 2], RankCorrelation.AverageRanks([5, 5, 5]));
        Assert.Equal([4, 1.5, 4, 1.5, 4], RankCorrelation.AverageRanks([7, 2, 7, 2, 7]));
    }

    [Fact]
    public void Spearman_of_monotone_and_reversed_orders_is_plus_and_minus_one()
    {
        Assert.Equal(1.0, RankCorrelation.Spearman([1, 2, 3, 4, 5], [2, 40, 60, 61, 1000])!.Value, 12);
        Assert.Equal(-1.0, RankCorrelation.Spearman([1, 2, 3, 4, 5], [9, 8, 7, 6, 5])!.Value, 12);
        Assert.Equal(1.0, RankCorrelation.KendallTauB([1, 2, 3, 4, 5], [2, 40, 60, 61, 1000])!.Value, 12);
        Assert.Equal(-1.0, RankCorrelation.KendallTauB([1, 2, 3, 4, 5], [9, 8, 7, 6, 5])!.Value, 12);
    }

    [Fact]
    public void Without_ties_spearman_is_one_minus_six_sum_d_squared_and_kendall_counts_pairs()
    {
        // ranks b = [2, 1, 4, 3, 5]: d = [-1, 1, -1, 1, 0], Σd² = 4, ρ = 1 − 6·4 / (5·24) = 0.8.
        // 10 pairs, discordant (1,2) and (3,4): τ = (8 − 2) / 10 = 0.6.
        Assert.Equal(0.8, RankCorrelation.Spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50])!.Value, 12);
        Assert.Equal(0.6, RankCorrelation.KendallTauB([1, 2, 3, 4, 5], [20, 10, 40, 30, 50])!.Value, 12);

        // The closed form on random permutations (no ties).
        var rng = new Random(5);
        for (int trial = 0; trial < 20; trial++)
        {
            int n = rng.Next(3, 40);
            double[] a = Enumerable.Range(0, n).Select(_ => rng.NextDouble()).ToArray();
            double[] b = Enumerable.Range(0, n).Select(_ => rng.NextDouble() * 100).ToArray();
            var ra = RankCorrelation.AverageRanks(a);
            var rb = RankCorrelation.AverageRanks(b);
            double d2 = ra.Zip(rb, (x, y) => (x - y) * (x - y)).Sum();
            Assert.Equal(1 - 6 * d2 / (n * ((double)n * n - 1)), RankCorrelation.Spearman(a, b)!.Value, 10);
        }
    }

    [Fact]
    public void Ties_use_average_ranks_and_tau_b()
    {
        // a ranks [1, 2.5, 2.5, 4], b ranks [1, 2, 3, 4]: deviations [-1.5, 0, 0, 1.5] and [-1.5, -0.5, 0.5, 1.5];
        // Σab = 4.5, Σaa = 4.5, Σbb = 5: ρ = 4.5 / √22.5 = √0.9 (the 1 − 6Σd² formula would give 0.95, wrong with ties).
        Assert.Equal(Math.Sqrt(0.9), RankCorrelation.Spearman([1, 2, 2, 3], [1, 2, 3, 4])!.Value, 12);
        // 6 pairs, 1 tied in a, none in b, the other 5 concordant: τ_b = 5 / √(5·6) = √(5/6).
        Assert.Equal(Math.Sqrt(5.0 / 6), RankCorrelation.KendallTauB([1, 2, 2, 3], [1, 2, 3, 4])!.Value, 12);
        // Ties on both sides, no association: ranks [1.5, 1.5, 3.5, 3.5] and [1.5, 3.5, 1.5, 3.5].
        Assert.Equal(0.0, RankCorrelation.Spearman([1, 1, 2, 2], [1, 2, 1, 2])!.Value, 12);
        Assert.Equal(0.0, RankCorrelation.KendallTauB([1, 1, 2, 2], [1, 2, 1, 2])!.Value, 12);
        // a = [1, 1, 2, 3], b = [1, 2, 2, 3]: ranks [1.5, 1.5, 3, 4] and [1, 2.5, 2.5, 4], means 2.5;
        // deviations [-1, -1, .5, 1.5] and [-1.5, 0, 0, 1.5]: Σab = 3.75, Σaa = Σbb = 4.5, ρ = 3.75 / 4.5 = 5/6.
        Assert.Equal(5.0 / 6, RankCorrelation.Spearman([1, 1, 2, 3], [1, 2, 2, 3])!.Value, 12);
        // pairs: (0,1) tied in a, (1,2) tied in b, the other 4 concordant: τ_b = 4 / √(5·5) = 0.8.
        Assert.Equal(0.8, RankCorrelation.KendallTauB([1, 1, 2, 3], [1, 2, 2, 3])!.Value, 12);
    }

    [Fact]
    public void Undefined_cases_are_null_and_bad_input_throws()
    {
        Assert.Null(RankCorrelation.Spearman([1], [2]));
        Assert.Null(RankCorrelation.Spearman([3, 3, 3], [1, 2, 3]));   // one side all tied: no ranking
        Assert.Null(RankCorrelation.KendallTauB([1, 2, 3], [4, 4, 4]));
        Assert.Null(RankCorrelation.KendallTauB([], []));
        Assert.Throws<ArgumentException>(() => RankCorrelation.Spearman([1, 2], [1, 2, 3]));
        Assert.Throws<ArgumentException>(() => RankCorrelation.Spearman([1, double.NaN], [1, 2]));
        Assert.Throws<ArgumentException>(() => RankCorrelation.KendallTauB([1, 2], [double.PositiveInfinity, 2]));
    }

    [Fact]
    public void Top_k_overlap_counts_the_shared_lowest()
    {
        double[] a = [1, 2, 3, 4, 5], b = [5, 4, 3, 2, 1];
        Assert.Equal(0, RankCorrelation.TopKOverlap(a, b, 2));
        Assert.Equal(1, RankCorrelation.TopKOverlap(a, b, 3));   // the middle one
        Assert.Equal(5, RankCorrelation.TopKOverlap(a, b, 10));  // k capped at the count
        Assert.Equal(2, RankCorrelation.TopKOverlap([1, 2, 3, 4], [2, 1, 4, 3], 2));
        Assert.Equal(1, RankCorrelation.TopKOverlap([1, 1, 3], [1, 3, 2], 1));   // a's tie at 1st place: index 0 first
        Assert.Throws<ArgumentOutOfRangeException>(() => RankCorrelation.TopKOverlap(a, b, 0));
    }
}
