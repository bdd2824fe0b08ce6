using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

/// <summary>CPU fused path against the double-precision ReferenceScorer.</summary>
public class ScorerTests
{
    // Tolerances (float32 fused vs float64 reference): rational ops and sqrt 1e-5 relative to
    // max(|ref|, mean|ref|); Vector256.Exp/Log and the exp-based tanh 1e-5 as well (measured ~1e-6).
    const double Rtol = 1e-5;

    public static TheoryData<string> Primitives => new()
    {
        "W", "G", "X",
        "sqr(sub(W, G))", "pow(W)", "neg(W)", "abs(sub(G, W))", "tanh(mul(W, X))", "tanh(mul(W, G))", "skp(W)",
        "log(sub(W, G))", "log(G)", "sqrt(sub(W, X))", "exp(mul(W, X))", "exp(neg(X))", "mms(sub(W, G))", "zsn(mul(W, X))",
        "add(W, G)", "sub(X, W)", "mul(W, X)", "div(W, G)", "div(X, sub(W, G))", "pdiv(W, sub(X, G))", "pdiv(G, W)",
        "mul(sqr(W), mms(G))", "mul(W, sqrt(X))", "mms(mul(zsn(W), mms(div(G, X))))",
    };

    [Theory]
    [MemberData(nameof(Primitives))]
    public void FusedMatchesReference(string text)
    {
        var e = MetricParser.Parse(text);
        foreach (var (rows, cols, seed) in new[] { (7, 37, 1), (64, 300, 2), (3, 8, 3), (5, 1, 4) })
        {
            var (w, g, x) = TestData.Random(rows, cols, seed);
            var reference = ReferenceScorer.Score(e, w, g, x, rows, cols);
            TestData.AssertClose(reference, TestData.Fused(e, w, g, x, rows, cols), Rtol, $"{text} {rows}x{cols}");
        }
    }

    [Fact]
    public void RandomTreesMatchReference()
    {
        var rng = new Random(42);
        int checkedTrees = 0;
        for (int t = 0; t < 60; t++)
        {
            var e = TestData.RandomTree(rng, 4, allowTranscendental: true);
            var (w, g, x) = TestData.Random(9, 45, t);
            var reference = ReferenceScorer.Score(e, w, g, x, 9, 45);
            // exp can exceed float range where double does not; such metrics are invalid anyway.
            if (reference.Any(v => !double.IsFinite(v) || Math.Abs(v) > 1e30)) continue;
            TestData.AssertClose(reference, TestData.Fused(e, w, g, x, 9, 45), 1e-4, e.ToString());
            checkedTrees++;
        }
        Assert.True(checkedTrees > 40, $"only {checkedTrees} trees checked");
    }

    [Fact]
    public void MmsOfConstantIsZero()
    {
        var (w, g, _) = TestData.Random(4, 19, 5);
        var x = Enumerable.Repeat(2.5f, 19).ToArray();
        var s = TestData.Fused(MetricParser.Parse("mms(X)"), w, g, x, 4, 19);
        Assert.All(s, v => Assert.Equal(0f, v));
        Assert.All(ReferenceScorer.Score(MetricParser.Parse("mms(X)"), w, g, x, 4, 19), v => Assert.Equal(0.0, v));
        var check = ScoreCheck.Check(s, 4, 19);
        Assert.False(check.Valid);
        Assert.Contains("no ranking", check.Reason);
    }

    [Fact]
    public void ZsnOfConstantIsZero()
    {
        var w = new float[6 * 10];
        var g = Enumerable.Repeat(0.125f, 60).ToArray();
        var s = TestData.Fused(MetricParser.Parse("zsn(G)"), w, g, [], 6, 10);
        Assert.All(s, v => Assert.Equal(0f, v));
        // and mul(W, zsn(G)) is then 0 too, not NaN
        var s2 = TestData.Fused(MetricParser.Parse("add(W, zsn(G))"), Enumerable.Range(0, 60).Select(i => (float)i).ToArray(), g, [], 6, 10);
        Assert.Equal(Enumerable.Range(0, 60).Select(i => (float)i), s2);
    }

    [Fact]
    public void ZsnUsesPopulationStd()
    {
        float[] w = [1, -3, 5, -7]; // |W| = 1,3,5,7: mean 4, population std sqrt(5)
        var s = TestData.Fused(MetricParser.Parse("zsn(W)"), w, [], [], 1, 4);
        double sd = Math.Sqrt(5);
        Assert.Equal([-3 / sd, -1 / sd, 1 / sd, 3 / sd], s.Select(v => (double)v), (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void DivByZeroNormLeavesNumerator()
    {
        var (w, _, x) = TestData.Random(3, 11, 6);
        var g = new float[33];
        var s = TestData.Fused(MetricParser.Parse("div(W, G)"), w, g, x, 3, 11);
        Assert.Equal(w.Select(MathF.Abs), s);
        var norm = TestData.Fused(MetricParser.Parse("div(W, W)"), w, g, x, 3, 11);
        double frob = Math.Sqrt(w.Sum(v => (double)v * v));
        Assert.Equal(w.Select(v => Math.Abs(v) / frob), norm.Select(v => (double)v), (a, b) => Math.Abs(a - b) < 1e-6);
    }

    [Fact]
    public void PDivProtectsSmallDenominators()
    {
        float[] w = [2, -4, 6, 8];
        float[] g = [0, 1e-13f, 2, 0.5f];
        var s = TestData.Fused(MetricParser.Parse("pdiv(W, G)"), w, g, [], 1, 4);
        Assert.Equal([2f, 4f, 3f, 16f], s);
    }

    [Fact]
    public void NaNInputMakesMetricInvalid()
    {
        var (w, g, x) = TestData.Random(5, 21, 7);
        w[17] = float.NaN;
        foreach (var text in new[] { "W", "mul(sqr(W), mms(G))", "mms(W)", "zsn(mul(W, X))", "div(G, W)" })
        {
            var s = TestData.Fused(MetricParser.Parse(text), w, g, x, 5, 21);
            var check = ScoreCheck.Check(s, 5, 21);
            Assert.False(check.Valid, text);
            Assert.True(check.NonFinite >= 1, text);
            Assert.Contains("not finite", check.Reason);
        }
    }

    [Fact]
    public void ValidScoresPass()
    {
        var (w, g, x) = TestData.Random(5, 21, 8);
        Assert.Equal(MetricValidity.Ok, ScoreCheck.Check(TestData.Fused(Metrics.PrunerZero, w, g, x, 5, 21), 5, 21));
        var inf = TestData.Fused(MetricParser.Parse("exp(mul(X, X))"), w, g, Enumerable.Repeat(10f, 21).ToArray(), 5, 21);
        Assert.False(ScoreCheck.Check(inf, 5, 21).Valid); // exp(100) overflows float32
    }

    [Fact]
    public void FusedIsDeterministicAndCached()
    {
        var (w, g, x) = TestData.Random(64, 300, 9);
        var e = MetricParser.Parse("add(zsn(mul(W, X)), mms(G))");
        Assert.Same(CpuFusedScorer.Compile(e), CpuFusedScorer.Compile(MetricParser.Parse(e.ToString())));
        Assert.Equal(TestData.Fused(e, w, g, x, 64, 300), TestData.Fused(e, w, g, x, 64, 300));
    }

    [Fact]
    public void BadArgumentsThrowClearly()
    {
        var (w, g, x) = TestData.Random(2, 8, 10);
        var s = new float[16];
        var ex = Assert.Throws<ArgumentException>(() => CpuFusedScorer.Score(Metrics.PrunerZero, w, [], x, 2, 8, s));
        Assert.Contains("uses G", ex.Message);
        Assert.Throws<ArgumentException>(() => CpuFusedScorer.Score(Metrics.Wanda, w, g, x.AsSpan(0, 3), 2, 8, s));
        Assert.Throws<ArgumentException>(() => CpuFusedScorer.Score(Metrics.Magnitude, w, g, x, 3, 8, s));
        CpuFusedScorer.Score(Metrics.Magnitude, w, [], [], 2, 8, s); // unused inputs may be empty
    }
}
