using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

public class MaskTests
{
    static byte[] Unstructured(float[] s, int rows, int cols, double sparsity)
    {
        var p = new byte[s.Length];
        Masks.Unstructured(s, rows, cols, sparsity, p);
        return p;
    }

    static byte[] NM(float[] s, int rows, int cols, int n, int m)
    {
        var p = new byte[s.Length];
        Masks.NM(s, rows, cols, n, m, p);
        return p;
    }

    static byte[] MaskOf(Expr e, float[] w, float[] g, float[] x, int rows, int cols, double sparsity)
        => Unstructured(TestData.Fused(e, w, g, x, rows, cols), rows, cols, sparsity);

    [Fact]
    public void MagnitudeExact()
    {
        float[] w = [0.5f, -0.1f, 0.3f, -0.9f,
                     -2f, 1f, -0.5f, 0.25f];
        Assert.Equal([0, 1, 1, 0, 0, 0, 1, 1], MaskOf(Metrics.Magnitude, w, [], [], 2, 4, 0.5));
    }

    [Fact]
    public void WandaExactWithTie()
    {
        float[] w = [1, -2, 3, 4];
        float[] x = [16, 1, 1, 0.25f]; // |W|·sqrt(X) = 4, 2, 3, 2
        Assert.Equal([0, 1, 0, 1], MaskOf(Metrics.Wanda, w, [], x, 1, 4, 0.5));
        Assert.Equal([0, 1, 0, 0], MaskOf(Metrics.Wanda, w, [], x, 1, 4, 0.25)); // tie 2 == 2: lower column first
    }

    [Fact]
    public void PrunerZeroExact()
    {
        float[] w = [1, -2, 3, 1,
                     2, 2, -1, 1];
        float[] g = [0, 1, 2, 4,
                     4, 0, 4, 2]; // mms(G) = g/4
        // |W|²·mms(G): row 0 = 0, 1, 4.5, 1 ; row 1 = 4, 0, 1, 0.5
        Assert.Equal([1, 1, 0, 0, 0, 1, 0, 1], MaskOf(Metrics.PrunerZero, w, g, [], 2, 4, 0.5));
        Assert.Equal([1, 1, 0, 1, 0, 1, 1, 1], MaskOf(Metrics.PrunerZero, w, g, [], 2, 4, 0.75));
    }

    [Fact]
    public void TiesBreakByColumnAndSignedZerosAreEqual()
    {
        Assert.Equal([1, 1, 0, 0], Unstructured([5, 5, 5, 5], 1, 4, 0.5));
        Assert.Equal([1, 1, 0, 0, 1], Unstructured([-0f, 0f, 1, 2, -1], 1, 5, 0.6));
        Assert.Equal([1, 0, 0, 0, 1], Unstructured([0f, -0f, 1, 2, -1], 1, 5, 0.4)); // -1, then +0 before -0 by column
    }

    [Fact]
    public void NaNRanksLowest()
    {
        Assert.Equal([0, 1, 0, 1], Unstructured([float.NegativeInfinity, float.NaN, 3, float.NaN], 1, 4, 0.5));
        Assert.Equal([1, 1, 0, 1], Unstructured([float.NegativeInfinity, float.NaN, 3, float.NaN], 1, 4, 0.75));
    }

    [Fact]
    public void ExtremesOfSparsity()
    {
        float[] s = [3, 1, 2];
        Assert.Equal([0, 0, 0], Unstructured(s, 1, 3, 0));
        Assert.Equal([1, 1, 1], Unstructured(s, 1, 3, 1));
        Assert.Equal([0, 1, 0], Unstructured(s, 1, 3, 0.5)); // floor(1.5) = 1
        Assert.Throws<ArgumentOutOfRangeException>(() => Unstructured(s, 1, 3, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => Unstructured(s, 1, 3, double.NaN));
    }

    [Fact]
    public void RadixSelectMatchesSortReference()
    {
        var rng = new Random(11);
        foreach (var (rows, cols) in new[] { (7, 37), (64, 300), (3, 4096), (1, 1) })
        {
            // Quantised scores give many ties; a few NaN, ±0, ±Inf, negatives.
            var s = new float[rows * cols];
            for (int i = 0; i < s.Length; i++)
                s[i] = rng.Next(10) switch
                {
                    0 => float.NaN, 1 => -0f, 2 => float.PositiveInfinity, 3 => float.NegativeInfinity,
                    _ => (rng.Next(41) - 20) * 0.25f,
                };
            var d = s.Select(v => (double)v).ToArray();
            foreach (var sp in new[] { 0.0, 0.1, 0.5, 0.6, 0.999, 1.0 })
            {
                var got = Unstructured(s, rows, cols, sp);
                Assert.Equal(ReferenceScorer.MaskUnstructured(d, rows, cols, sp), got);
                int k = (int)Math.Floor(cols * sp);
                for (int r = 0; r < rows; r++)
                    Assert.Equal(k, got.AsSpan(r * cols, cols).ToArray().Count(b => b == 1));
            }
        }
    }

    [Fact]
    public void RadixSelectOnContinuousAndNearlyEqualScores()
    {
        // Continuous scores of both signs reach every digit of the key; scores a few ulps apart (one
        // exponent, shuffled) differ only in the lowest digit; odd widths exercise the scalar tails.
        var rng = new Random(13);
        foreach (var (rows, cols) in new[] { (5, 4096), (9, 1001), (4, 33) })
        {
            var gauss = new float[rows * cols];
            for (int i = 0; i < gauss.Length; i++)
                gauss[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) * 0.02);
            var ulps = new float[rows * cols];
            for (int i = 0; i < ulps.Length; i++)
                ulps[i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(1.5f) + (uint)rng.Next(3 * cols / 2));
            foreach (var s in new[] { gauss, ulps })
            {
                var d = s.Select(v => (double)v).ToArray();
                foreach (var sp in new[] { 0.5, 0.3, 0.97 })
                    Assert.Equal(ReferenceScorer.MaskUnstructured(d, rows, cols, sp), Unstructured(s, rows, cols, sp));
            }
        }
    }

    [Fact]
    public void NMTwoFourExact()
    {
        float[] s = [4, 1, 3, 2, 0, 0, 0, 0,
                     -1, 5, float.NaN, 7, 9, 8, 9, 8];
        Assert.Equal([0, 1, 0, 1, 1, 1, 0, 0,
                      1, 0, 1, 0, 0, 1, 0, 1], NM(s, 2, 8, 2, 4));
    }

    [Fact]
    public void NMMatchesReferenceAndChecksShape()
    {
        var rng = new Random(12);
        var s = Enumerable.Range(0, 16 * 64).Select(_ => (float)rng.Next(6)).ToArray();
        var d = s.Select(v => (double)v).ToArray();
        foreach (var (n, m) in new[] { (2, 4), (4, 8), (1, 2), (0, 4), (4, 4) })
        {
            var got = NM(s, 16, 64, n, m);
            Assert.Equal(ReferenceScorer.MaskNM(d, 16, 64, n, m), got);
            Assert.Equal(16 * 64 / m * n, got.Count(b => b == 1));
        }
        var ex = Assert.Throws<ArgumentException>(() => NM(new float[10], 1, 10, 2, 4));
        Assert.Contains("multiple of m", ex.Message);
    }

    [Fact]
    public void FusedMasksEqualReferenceMasks()
    {
        var rng = new Random(13);
        var exprs = new List<Expr> { Metrics.Magnitude, Metrics.Wanda, Metrics.PrunerZero };
        for (int t = 0; t < 25; t++) exprs.Add(TestData.RandomTree(rng, 4, allowTranscendental: false));
        var compared = new List<Expr>();
        foreach (var e in exprs)
        {
            var (w, g, x) = TestData.Random(64, 300, 100 + exprs.IndexOf(e));
            var reference = ReferenceScorer.Score(e, w, g, x, 64, 300);
            // Only a reference that is non-finite or ranks nothing (every row constant) is no test case;
            // where the reference ranks, the fused scores must be valid too.
            if (reference.Any(v => !double.IsFinite(v))) continue;
            if (Enumerable.Range(0, 64).All(r => reference.Skip(r * 300).Take(300).Distinct().Count() == 1)) continue;
            var fused = TestData.Fused(e, w, g, x, 64, 300);
            Assert.True(ScoreCheck.Check(fused, 64, 300).Valid, $"fused scores invalid where the reference ranks: {e}");
            Assert.True(ReferenceScorer.MaskUnstructured(reference, 64, 300, 0.5).AsSpan()
                .SequenceEqual(Unstructured(fused, 64, 300, 0.5)), $"mask differs for {e}");
            compared.Add(e);
        }
        Assert.Contains(Metrics.Magnitude, compared);
        Assert.Contains(Metrics.Wanda, compared);
        Assert.Contains(Metrics.PrunerZero, compared);
        Assert.True(compared.Count >= exprs.Count * 2 / 3, $"only {compared.Count} of {exprs.Count} metrics were compared");
    }
}
