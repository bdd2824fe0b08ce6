using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

public class PruningTests : TorchGuarded
{
    static bool SameZeros(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.EqualTo(0).eq(b.EqualTo(0)).all().item<bool>();
    }

    static CalibrationSet Calib(LlamaConfig c, int n = 3, int t = 16, int seed = 11)
    {
        var rng = new Random(seed);
        var windows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, t).Select(_ => (long)rng.Next(c.VocabSize)).ToArray()).ToArray();
        return new CalibrationSet("synthetic", CalibSampling.Stride, 0, t, windows);
    }

    /// <summary>G of one weight by central finite differences of the window losses: sqrt(Σ_windows (100·∂L/∂w)²).</summary>
    internal static double FiniteDifferenceG(LlamaModel model, CalibrationSet calib, Tensor flat, int i, float h)
    {
        double sumSq = 0;
        float orig = flat[i].item<float>();
        foreach (var win in calib.Windows)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(win, [1, win.Length]);
            flat[i] = orig + h;
            double lp = model.NextTokenLoss(ids).item<float>();
            flat[i] = orig - h;
            double lm = model.NextTokenLoss(ids).item<float>();
            flat[i] = orig;
            double d = 100 * (lp - lm) / (2 * h);
            sumSq += d * d;
        }
        return Math.Sqrt(sumSq);
    }

    /// <summary>X of block 0's Q/K/V: Σ over tokens of (RMSNorm(embedding))² per column, over nsamples — written with plain tensor ops.</summary>
    [Fact]
    public void XOfFirstBlockMatchesPlainComputation()
    {
        using var testScope = NewDisposeScope();
        using var model = Checkpoint.Load(TestCheckpoints.Write(TestCheckpoints.Config(), seed: 2));
        var calib = Calib(model.Config);
        using var _ = no_grad();
        using var stats = new XStats();
        var (cos, sin) = model.Rope(calib.Seqlen);
        foreach (var w in calib.Windows) model.BlockForward(0, model.EmbedTokens(tensor(w, [1, w.Length])), cos, sin, stats.Add);
        var got = stats.Finish(LinearKind.Q, calib.NSamples);

        var want = new double[model.Config.HiddenSize];
        var embed = TestCheckpoints.Floats(model.Embed);
        var norm = TestCheckpoints.Floats(model.Blocks[0].InputNorm);
        int c = model.Config.HiddenSize;
        foreach (var w in calib.Windows)
            foreach (var id in w)
            {
                var row = Enumerable.Range(0, c).Select(j => (double)embed[id * c + j]).ToArray();
                double r = 1 / Math.Sqrt(row.Average(v => v * v) + model.Config.RmsNormEps);
                for (int j = 0; j < c; j++) want[j] += Math.Pow(row[j] * r * norm[j], 2);
            }
        for (int j = 0; j < c; j++) Assert.Equal(want[j] / calib.NSamples, got[j], 1e-3 * Math.Max(1, want[j] / calib.NSamples));
    }

    /// <summary>G against central finite differences of the window losses: G² = Σ_windows (100·∂L/∂w)².</summary>
    [Fact]
    public void GradientsMatchFiniteDifferences()
    {
        using var testScope = NewDisposeScope();
        using var model = Checkpoint.Load(TestCheckpoints.Write(TestCheckpoints.Config(vocab: 260), seed: 4, scale: 0.5f));
        var calib = Calib(model.Config, n: 2, t: 12);
        using var g = GradientStats.Compute(model, calib);
        var gq = TestCheckpoints.Floats(g[1, LinearKind.Up]);
        // Check the largest few entries, where finite differences are well above float noise.
        var idx = Enumerable.Range(0, gq.Length).OrderByDescending(i => gq[i]).Take(3).ToArray();
        using var _ = no_grad();
        var w = model.Blocks[1].Up;
        var flat = w.view(-1);
        foreach (int i in idx)
        {
            double want = FiniteDifferenceG(model, calib, flat, i, 1e-2f);
            Assert.Equal(want, gq[i], 0.03 * want);
        }
    }

    /// <summary>The sequential protocol against a plain re-implementation with the Kernels reference scorer and full-sort masks.</summary>
    [Theory]
    [InlineData("wanda", false)]
    [InlineData("mul(sqr(W), mms(X))", true)]
    public void SequentialPruningMatchesPlainProtocol(string metricText, bool nm)
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 9);
        var metric = Metrics.Resolve(metricText);
        var target = nm ? PruneTarget.ParseNM("2:4") : PruneTarget.Unstructured(0.5);
        using var model = Checkpoint.Load(dir);
        var calib = Calib(model.Config, n: 4);
        var report = new Pruner(new CpuBackend()).PruneSequential(model, calib, null, metric, target);
        Assert.True(report.Valid, report.InvalidReason);

        using var plain = Checkpoint.Load(dir);
        using var _ = no_grad();
        var (cos, sin) = plain.Rope(calib.Seqlen);
        var h = calib.Windows.Select(w => plain.EmbedTokens(tensor(w, [1, w.Length]))).ToList();
        for (int b = 0; b < plain.Blocks.Count; b++)
        {
            var inputs = new Dictionary<LinearKind, double[]>();
            foreach (var x in h)
                plain.BlockForward(b, x, cos, sin, (k, t) =>
                {
                    var sq = TestCheckpoints.Floats(t.Squared().sum([0, 1]));
                    inputs[k] = inputs.TryGetValue(k, out var acc) ? acc.Zip(sq, (a, s) => a + s).ToArray() : sq.Select(v => (double)v).ToArray();
                });
            foreach (var k in LinearKinds.All)
            {
                var wt = plain.Blocks[b][k];
                int rows = (int)wt.shape[0], cols = (int)wt.shape[1];
                var wv = TestCheckpoints.Floats(wt);
                var xv = inputs[k].Select(v => (float)(v / calib.NSamples)).ToArray();
                var scores = ReferenceScorer.Score(metric, wv, [], xv, rows, cols);
                var prune = nm ? ReferenceScorer.MaskNM(scores, rows, cols, 2, 4) : ReferenceScorer.MaskUnstructured(scores, rows, cols, 0.5);
                for (int i = 0; i < wv.Length; i++) if (prune[i] != 0) wv[i] = 0;
                wt.copy_(tensor(wv, wt.shape));
            }
            h = h.Select(x => plain.BlockForward(b, x, cos, sin)).ToList();
        }
        foreach (var ((name, a), (_, bb)) in model.NamedTensors().Zip(plain.NamedTensors()))
            Assert.True(SameZeros(a, bb), $"{name}: masks differ between the engine and the plain protocol");
        Assert.All(report.Layers, l => Assert.Equal(0.5, l.Sparsity, 2));
    }

    [Fact]
    public void PrunedModelSavedAsF16ReloadsWithZerosInPlace()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(dtype: "float16"), seed: 12);
        using var model = Checkpoint.Load(dir);
        var report = new Pruner(new CpuBackend()).PruneSequential(model, Calib(model.Config), null, Metrics.Magnitude, PruneTarget.ParseNM("2:4"));
        string outDir = TestCheckpoints.TempDir("pruned");
        Checkpoint.Save(model, outDir, dir, ScalarType.Float16);
        using var again = Checkpoint.Load(outDir);
        var reloaded = Pruner.Sparsity(again);
        Assert.Equal(report.Layers.Select(l => l.Zeros), reloaded.Select(l => l.Zeros));
        Assert.All(reloaded, l => Assert.Equal(0.5, l.Sparsity, 6));
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All)
                Assert.True(SameZeros(model.Blocks[i][k], again.Blocks[i][k]));
        // Weights that were not pruned are kept as they were (F16 in, F16 out).
        Assert.True(model.Embed.allclose(again.Embed, 0, 0));
    }
}
