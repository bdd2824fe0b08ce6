using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// SparseGPT and the OBS update against a plain float64 computation of the OBS formulas: when column q of the
/// not-yet-processed set F is fixed to its pruned value, the others move by −(w_q − q) / [H_F⁻¹]_qq · [H_F⁻¹]_q,:
/// (H_F⁻¹ by Gauss–Jordan on the dampened Hessian restricted to F; no Cholesky, no lazy batching).
/// </summary>
public class SparseGptTests : TorchGuarded
{
    // ---- data ------------------------------------------------------------------------------------

    static double[] Normal(Random rng, int n)
    {
        var v = new double[n];
        for (int i = 0; i < n; i++) v[i] = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        return v;
    }

    /// <summary>N samples of K correlated inputs: Z (N, K) times a mixing matrix I + 0.6·A; columns scaled differently.</summary>
    static double[] Inputs(Random rng, int n, int k)
    {
        var z = Normal(rng, n * k);
        var a = Normal(rng, k * k);
        var x = new double[n * k];
        for (int s = 0; s < n; s++)
            for (int j = 0; j < k; j++)
            {
                double acc = z[s * k + j];
                for (int i = 0; i < k; i++) acc += 0.6 * z[s * k + i] * a[i * k + j];
                x[s * k + j] = acc * (0.5 + (j % 5) * 0.4);
            }
        return x;
    }

    /// <summary>H = (2 / N) · XᵀX, rounded to float32 (what both implementations then start from).</summary>
    static float[] Hessian(double[] x, int n, int k)
    {
        var h = new float[k * k];
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                double acc = 0;
                for (int s = 0; s < n; s++) acc += x[s * k + i] * x[s * k + j];
                h[i * k + j] = (float)(2.0 / n * acc);
            }
        return h;
    }

    static float[] Weights(Random rng, int r, int k) => Normal(rng, r * k).Select(v => (float)(0.05 * v)).ToArray();

    // ---- the float64 OBS computation -------------------------------------------------------------

    static double[,] Invert(double[,] m)
    {
        int n = m.GetLength(0);
        var a = (double[,])m.Clone();
        var inv = new double[n, n];
        for (int i = 0; i < n; i++) inv[i, i] = 1;
        for (int c = 0; c < n; c++)
        {
            int p = c;
            for (int r = c + 1; r < n; r++) if (Math.Abs(a[r, c]) > Math.Abs(a[p, c])) p = r;
            for (int j = 0; j < n; j++) { (a[c, j], a[p, j]) = (a[p, j], a[c, j]); (inv[c, j], inv[p, j]) = (inv[p, j], inv[c, j]); }
            double d = a[c, c];
            for (int j = 0; j < n; j++) { a[c, j] /= d; inv[c, j] /= d; }
            for (int r = 0; r < n; r++)
            {
                if (r == c || a[r, c] == 0) continue;
                double f = a[r, c];
                for (int j = 0; j < n; j++) { a[r, j] -= f * a[c, j]; inv[r, j] -= f * inv[c, j]; }
            }
        }
        return inv;
    }

    /// <summary>
    /// The method in float64 from the OBS formulas. mask: 1 = pruned, or null for SparseGPT's own choice
    /// (per block: w² / [H_F⁻¹]_cc ≤ the ⌊numel·s⌋-th order statistic; N:M: the n lowest of each group of m).
    /// Returns the pruned weights and the final mask.
    /// </summary>
    static (double[] W, byte[] Mask) Obs64(float[] w0, float[] h0, int rows, int cols, PruneTarget target, byte[]? mask, int block)
    {
        var h = new double[cols, cols];
        for (int i = 0; i < cols; i++) for (int j = 0; j < cols; j++) h[i, j] = h0[i * cols + j];
        var w = w0.Select(v => (double)v).ToArray();
        var dead = new bool[cols];
        for (int i = 0; i < cols; i++) if (h[i, i] == 0) { dead[i] = true; h[i, i] = 1; }
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) if (dead[c]) w[r * cols + c] = 0;
        double damp = 0.01 * Enumerable.Range(0, cols).Average(i => h[i, i]);
        for (int i = 0; i < cols; i++) h[i, i] += damp;

        // [H_F⁻¹] row q for F = {q, ..., K−1}: the first row of the inverse of the trailing submatrix.
        var finv = new double[cols][];
        for (int q = 0; q < cols; q++)
        {
            int n = cols - q;
            var sub = new double[n, n];
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) sub[i, j] = h[q + i, q + j];
            var inv = Invert(sub);
            finv[q] = Enumerable.Range(0, n).Select(j => inv[0, j]).ToArray();
        }
        var m = mask?.ToArray() ?? new byte[rows * cols];
        for (int b0 = 0; b0 < cols; b0 += block)
        {
            int b1 = Math.Min(cols, b0 + block);
            if (mask is null && !target.IsNM)
            {
                var tmp = new List<(double V, int R, int C)>();
                for (int r = 0; r < rows; r++) for (int c = b0; c < b1; c++) tmp.Add((w[r * cols + c] * w[r * cols + c] / finv[c][0], r, c));
                double thresh = tmp.Select(t => t.V).Order().ElementAt((int)(tmp.Count * target.Sparsity));
                foreach (var t in tmp) if (t.V <= thresh) m[t.R * cols + t.C] = 1;
            }
            for (int q = b0; q < b1; q++)
                for (int r = 0; r < rows; r++)
                {
                    if (mask is null && target.IsNM && (q - b0) % target.M == 0)
                        foreach (int c in Enumerable.Range(q, target.M).OrderBy(c => w[r * cols + c] * w[r * cols + c] / finv[c][0]).ThenBy(c => c).Take(target.N))
                            m[r * cols + c] = 1;
                    double wq = w[r * cols + q], keep = m[r * cols + q] != 0 ? 0 : wq;
                    double f = (wq - keep) / finv[q][0];
                    for (int j = q + 1; j < cols; j++) w[r * cols + j] -= f * finv[q][j - q];
                    w[r * cols + q] = keep;
                }
        }
        return (w, m);
    }

    // ---- the implementation under test ----------------------------------------------------------

    static float[] RunSparseGpt(float[] w0, float[] h0, int rows, int cols, PruneTarget target, byte[]? mask, int? block = null)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var w = tensor(w0.ToArray(), [rows, cols]);
        var (hinv, dead) = SparseGpt.InverseFactor(tensor(h0, [cols, cols]), "test");
        SparseGpt.Prune(w, hinv, dead, target, mask ?? default, mask is null, block);
        return TestCheckpoints.Floats(w);
    }

    static void AssertClose(double[] want, float[] got, double tol)
    {
        double scale = want.Max(Math.Abs);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) <= tol * scale, $"entry {i}: want {want[i]}, got {got[i]}");
    }

    static (float[] W, float[] H, double[] X) Layer(int seed, int rows, int cols, int n = 400)
    {
        var rng = new Random(seed);
        var x = Inputs(rng, n, cols);
        return (Weights(rng, rows, cols), Hessian(x, n, cols), x);
    }

    [Theory]
    [InlineData(0.5, 0, 0, 8)]     // three blocks of 8: the lazy update between blocks
    [InlineData(0.5, 0, 0, 128)]   // the default blocking: one block of 128 and one of 32 columns
    [InlineData(0.3, 0, 0, 16)]
    [InlineData(0, 2, 4, 8)]
    [InlineData(0, 2, 4, 128)]
    public void SparseGptEqualsTheObsFormulasInFloat64(double sparsity, int n, int m, int block)
    {
        int rows = 12, cols = block == 128 ? 160 : 24;
        var (w, h, _) = Layer(3, rows, cols);
        var target = m > 0 ? new PruneTarget((double)n / m, n, m) : PruneTarget.Unstructured(sparsity);
        var got = RunSparseGpt(w, h, rows, cols, target, null, block);
        var (want, wantMask) = Obs64(w, h, rows, cols, target, null, block);
        for (int i = 0; i < want.Length; i++) Assert.Equal(wantMask[i] != 0, got[i] == 0);
        AssertClose(want, got, 2e-4);
        if (m > 0)
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < cols; g += m) Assert.Equal(n, Enumerable.Range(g, m).Count(c => got[r * cols + c] == 0));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ObsUpdateWithAFixedMaskEqualsTheFormulas(bool nm)
    {
        int rows = 10, cols = 160;
        var (w, h, _) = Layer(5, rows, cols);
        var target = nm ? PruneTarget.ParseNM("2:4") : PruneTarget.Unstructured(0.5);
        var mask = new byte[rows * cols];
        var scores = w.Select(MathF.Abs).ToArray();
        if (nm) Masks.NM(scores, rows, cols, 2, 4, mask); else Masks.Unstructured(scores, rows, cols, 0.5, mask);
        var got = RunSparseGpt(w, h, rows, cols, target, mask);
        var (want, _) = Obs64(w, h, rows, cols, target, mask, 128);
        for (int i = 0; i < mask.Length; i++) Assert.Equal(mask[i] != 0, got[i] == 0);
        AssertClose(want, got, 2e-4);
        Assert.Contains(Enumerable.Range(0, w.Length), i => mask[i] == 0 && Math.Abs(got[i] - w[i]) > 1e-3 * Math.Abs(w[i]));   // kept weights moved
    }

    [Theory]
    [InlineData(0.5, 0, 0)]
    [InlineData(0, 2, 4)]
    public void WithAnIdentityHessianTheMaskIsMagnitudesPerBlock(double sparsity, int n, int m)
    {
        int rows = 16, cols = 256;
        var w = Weights(new Random(9), rows, cols);
        var eye = new float[cols * cols];
        for (int i = 0; i < cols; i++) eye[i * cols + i] = 1;
        var target = m > 0 ? new PruneTarget((double)n / m, n, m) : PruneTarget.Unstructured(sparsity);
        var got = RunSparseGpt(w, eye, rows, cols, target, null);
        var want = new byte[rows * cols];
        if (m > 0) Masks.NM(w.Select(MathF.Abs).ToArray(), rows, cols, n, m, want);
        else
            for (int b0 = 0; b0 < cols; b0 += 128)
            {
                // magnitude over the whole block (all rows at once), the reference's ≤ threshold rule
                var idx = Enumerable.Range(0, rows).SelectMany(r => Enumerable.Range(b0, 128).Select(c => r * cols + c)).ToList();
                float thresh = idx.Select(i => MathF.Abs(w[i])).Order().ElementAt((int)(idx.Count * sparsity));
                foreach (int i in idx) want[i] = MathF.Abs(w[i]) <= thresh ? (byte)1 : (byte)0;
            }
        for (int i = 0; i < w.Length; i++)
        {
            Assert.Equal(want[i] != 0, got[i] == 0);
            if (want[i] == 0) Assert.Equal(w[i], got[i]);   // no correlations, so nothing to compensate
        }
        if (m == 0)
        {
            Assert.Equal(2 * ((int)(rows * 128 * sparsity) + 1), got.Count(v => v == 0));   // ⌊numel·s⌋ + 1 per block (no ties here)
            Assert.Contains(Enumerable.Range(0, rows), r => Enumerable.Range(0, cols).Count(c => got[r * cols + c] == 0) != cols / 2);   // rows are not at 50%
        }
    }

    static double OutputError(float[] w, float[] wHat, double[] x, int rows, int cols, int n)
    {
        double e = 0;
        for (int s = 0; s < n; s++)
            for (int r = 0; r < rows; r++)
            {
                double d = 0;
                for (int c = 0; c < cols; c++) d += (w[r * cols + c] - wHat[r * cols + c]) * x[s * cols + c];
                e += d * d;
            }
        return Math.Sqrt(e);
    }

    [Fact]
    public void TheUpdateLowersTheLayerOutputError()
    {
        int rows = 24, cols = 64, n = 400;
        // Strongly correlated inputs: 8 latent factors mixed into 64 inputs, plus a little independent noise.
        var rng = new Random(7);
        var z = Normal(rng, n * 8);
        var b = Normal(rng, 8 * cols);
        var noise = Normal(rng, n * cols);
        var x = new double[n * cols];
        for (int s = 0; s < n; s++)
            for (int c = 0; c < cols; c++)
                x[s * cols + c] = Enumerable.Range(0, 8).Sum(f => z[s * 8 + f] * b[f * cols + c]) + 0.1 * noise[s * cols + c];
        var h = Hessian(x, n, cols);
        var w = Weights(rng, rows, cols);
        var target = PruneTarget.Unstructured(0.5);
        var mask = new byte[rows * cols];
        Masks.Unstructured(w.Select(MathF.Abs).ToArray(), rows, cols, 0.5, mask);
        var plain = w.Select((v, i) => mask[i] != 0 ? 0f : v).ToArray();
        var obs = RunSparseGpt(w, h, rows, cols, target, mask);
        var sgpt = RunSparseGpt(w, h, rows, cols, target, null);
        double ePlain = OutputError(w, plain, x, rows, cols, n), eObs = OutputError(w, obs, x, rows, cols, n), eSgpt = OutputError(w, sgpt, x, rows, cols, n);
        // The dampening (0.01·mean diag) keeps the compensation from using the weakest directions fully.
        Assert.True(eObs < 0.8 * ePlain, $"magnitude + obs {eObs} vs magnitude {ePlain}");
        Assert.True(eSgpt < 0.8 * ePlain, $"sparsegpt {eSgpt} vs magnitude {ePlain}");
        Assert.True(eSgpt < eObs, $"sparsegpt {eSgpt} vs magnitude + obs {eObs}");
    }

    [Fact]
    public void DeadInputsAreZeroedAndDoNotBreakTheFactorization()
    {
        int rows = 6, cols = 16;
        var (w, h, _) = Layer(11, rows, cols);
        for (int j = 0; j < cols; j++) { h[3 * cols + j] = 0; h[j * cols + 3] = 0; }   // input 3 never active
        var got = RunSparseGpt(w, h, rows, cols, PruneTarget.Unstructured(0.25), null);
        var (want, _) = Obs64(w, h, rows, cols, PruneTarget.Unstructured(0.25), null, 128);
        for (int r = 0; r < rows; r++) Assert.Equal(0f, got[r * cols + 3]);
        AssertClose(want, got, 2e-4);
    }

    [Fact]
    public void HessianAccumulationIsTheRunningAverageOfTheReference()
    {
        var rng = new Random(2);
        int k = 5;
        var batches = new[] { 2, 1, 3 }.Select(b => Normal(rng, b * 4 * k).Select(v => (float)v).ToArray()).ToList();
        using var stats = new HessianStats();
        using var _ = no_grad();
        foreach (var b in batches)
        {
            using var t = tensor(b, [b.Length / (4 * k), 4, k]);
            stats.Add(LinearKind.Q, t);
            stats.Add(LinearKind.K, t);   // shares Q's: not added twice
        }
        Assert.Equal(6, stats.Samples(LinearKind.V));
        var got = TestCheckpoints.Floats(stats[LinearKind.K]);
        var all = batches.SelectMany(b => b).ToArray();
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++)
            {
                double want = 0;
                for (int s = 0; s < all.Length / k; s++) want += (double)all[s * k + i] * all[s * k + j];
                want *= 2.0 / 6;
                Assert.Equal(want, got[i * k + j], 1e-5 * Math.Max(1, Math.Abs(want)));
            }
    }

    // ---- bad input ------------------------------------------------------------------------------

    [Fact]
    public void ANonFiniteOrIndefiniteHessianIsOneClearError()
    {
        using var testScope = NewDisposeScope();
        using var _ = no_grad();
        var h = new float[16];
        for (int i = 0; i < 4; i++) h[i * 4 + i] = -1;   // negative diagonal: the dampening cannot rescue it
        var e = Assert.Throws<PrunerZeroException>(() => SparseGpt.InverseFactor(tensor(h, [4, 4]), "layer.x"));
        Assert.Contains("layer.x: the Hessian of the calibration inputs is not positive definite", e.Message);
        h[5] = float.NaN;
        e = Assert.Throws<PrunerZeroException>(() => SparseGpt.InverseFactor(tensor(h, [4, 4]), "layer.y"));
        Assert.Contains("NaN or infinite", e.Message);
    }

    [Fact]
    public void AllZeroInputsLeaveIdentityAndZeroWeights()
    {
        // The reference's rule: every input dead → H = I, damp = 0.01, all weights 0 (no error: H is regular).
        using var _ = no_grad();
        var got = RunSparseGpt(Weights(new Random(1), 3, 8), new float[64], 3, 8, PruneTarget.Unstructured(0.5), null);
        Assert.All(got, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ModelChecksComeBeforePruning()
    {
        using var testScope = NewDisposeScope();
        var cfg = LlamaConfig.FromJson(TestCheckpoints.Config());
        var e = Assert.Throws<PrunerZeroException>(() => ObsUpdate.CheckModel(cfg, PruneTarget.ParseNM("2:5"), long.MaxValue, "sparsegpt"));
        Assert.Contains("multiple of 5", e.Message);
        e = Assert.Throws<PrunerZeroException>(() => ObsUpdate.CheckModel(cfg, PruneTarget.Unstructured(0.5), 1000, "sparsegpt"));
        Assert.Contains("Hessians of one block need", e.Message);
        ObsUpdate.CheckModel(cfg, PruneTarget.ParseNM("2:4"), long.MaxValue, "sparsegpt");
        Assert.True(HessianStats.AvailableBytes() > 0);
        using var _ = no_grad();
        var w = tensor(new float[12], [2, 6]);
        var ex = Assert.Throws<PrunerZeroException>(() => SparseGpt.Prune(w, eye(6), new bool[6], PruneTarget.ParseNM("2:4"), default, true));
        Assert.Contains("multiple of 4", ex.Message);
    }
}
