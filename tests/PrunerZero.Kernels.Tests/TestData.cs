using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

/// <summary>Seeded random inputs: W signed, G ≥ 0, X > 0, shapes (R, K) row-major.</summary>
internal static class TestData
{
    public static (float[] W, float[] G, float[] X) Random(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var w = new float[rows * cols];
        var g = new float[rows * cols];
        var x = new float[cols];
        for (int i = 0; i < w.Length; i++) { w[i] = (float)(rng.NextDouble() * 2 - 1); g[i] = (float)(rng.NextDouble() * 0.01); }
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 + 0.01);
        return (w, g, x);
    }

    /// <summary>Random GP-style tree of at most the given depth (terminals W, G, X).</summary>
    public static Expr RandomTree(Random rng, int depth, bool allowTranscendental)
    {
        if (depth <= 1 || rng.NextDouble() < 0.25) return Expr.Leaf(Ops.Terminals[rng.Next(3)]);
        var unary = Ops.Unary.Where(o => allowTranscendental || o is not (Op.Exp or Op.Log or Op.Tanh)).ToArray();
        if (rng.NextDouble() < 0.5)
            return Expr.Unary(unary[rng.Next(unary.Length)], RandomTree(rng, depth - 1, allowTranscendental));
        return Expr.Binary(Ops.Binary[rng.Next(Ops.Binary.Count)], RandomTree(rng, depth - 1, allowTranscendental), RandomTree(rng, depth - 1, allowTranscendental));
    }

    public static float[] Fused(Expr e, float[] w, float[] g, float[] x, int rows, int cols)
    {
        var s = new float[rows * cols];
        CpuFusedScorer.Score(e, w, g, x, rows, cols, s);
        return s;
    }

    /// <summary>|fused − ref| ≤ rtol·(|ref| + mean|ref|): relative, with an absolute floor at the matrix's scale.</summary>
    public static void AssertClose(double[] reference, float[] actual, double rtol, string what)
    {
        Assert.Equal(reference.Length, actual.Length);
        double scale = reference.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Average();
        for (int i = 0; i < reference.Length; i++)
        {
            double r = reference[i], a = actual[i];
            if (double.IsNaN(r)) { Assert.True(double.IsNaN(a), $"{what}: [{i}] expected NaN, got {a}"); continue; }
            double err = Math.Abs(a - r);
            Assert.True(err <= rtol * (Math.Abs(r) + scale) || a == r,
                $"{what}: [{i}] fused {a} vs reference {r} (err {err:g3}, tol {rtol * (Math.Abs(r) + scale):g3})");
        }
    }
}
