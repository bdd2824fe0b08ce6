using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>OWL's layer-wise sparsity and allocation profiles, against computations written here from OWL's formulas.</summary>
public class OwlTests : TorchGuarded
{
    static CalibrationSet Calib(LlamaConfig c, int n = 3, int t = 16)
    {
        var rng = new Random(5);
        var windows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, t).Select(_ => (long)rng.Next(c.VocabSize)).ToArray()).ToArray();
        return new CalibrationSet("synthetic", CalibSampling.Stride, 0, t, windows);
    }

    static LlamaModel FourBlocks(int seed)
    {
        var config = TestCheckpoints.Config();
        config["num_hidden_layers"] = 4;
        return Checkpoint.Load(TestCheckpoints.Write(config, seed: seed, scale: 0.5f));
    }

    [Fact]
    public void RatiosMapOntoTheSpreadWithTheTargetAsMean()
    {
        var a = Owl.FromRatios([1, 2, 3], 0.7, 5, 0.08);
        // scaled onto [0, 0.16], mean 0.08: densities 0.22, 0.30, 0.38.
        Assert.Equal(0.78, a.BlockSparsity(0), 12);
        Assert.Equal(0.70, a.BlockSparsity(1), 12);
        Assert.Equal(0.62, a.BlockSparsity(2), 12);
        Assert.All(LinearKinds.All, k => Assert.Equal(a.BlockSparsity(0), a[0, k]));
        var even = Owl.FromRatios([4, 4], 0.5, 5, 0.08);             // no spread in D: uniform
        Assert.True(even.IsUniform);
        Assert.Throws<PrunerZeroException>(() => Owl.FromRatios([0, 10], 0.95, 5, 0.08));   // 1.03: beyond [0, 1)
    }

    [Fact]
    public void OutlierRatiosMatchAPlainComputation()
    {
        using var testScope = NewDisposeScope();
        using var model = FourBlocks(seed: 8);
        var calib = Calib(model.Config);
        var x = DenseX.Compute(model, calib);
        const double m = 2;   // the tiny random model has few scores above 5× the mean
        var got = Owl.OutlierRatios(model, x, m);
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            var scores = new List<double>();
            foreach (var k in LinearKinds.All)
            {
                var w = TestCheckpoints.Floats(model.Blocks[i][k]);
                var xs = x[i, k];
                int cols = xs.Length;
                for (int j = 0; j < w.Length; j++) scores.Add(Math.Abs(w[j]) * Math.Sqrt(xs[j % cols]));
            }
            double mean = scores.Average();
            double want = 100.0 * scores.Count(s => s > m * mean) / scores.Count;
            Assert.Equal(want, got[i], 1e-9);
            Assert.InRange(got[i], 0.01, 99.99);
        }
        var owl = Owl.Allocate(model, x, 0.7, m, 0.08);
        Assert.False(owl.IsUniform);
        Assert.Equal(0.7, Enumerable.Range(0, 4).Average(owl.BlockSparsity), 12);
        // The most outlier-heavy block keeps the most weights.
        int heaviest = Array.IndexOf(got, got.Max());
        Assert.Equal(Enumerable.Range(0, 4).Min(owl.BlockSparsity), owl.BlockSparsity(heaviest), 12);
    }

    [Fact]
    public void PruningFollowsTheAllocationAndMeetsTheTarget()
    {
        using var testScope = NewDisposeScope();
        using var model = FourBlocks(seed: 9);
        var a = SparsityAllocation.PerBlock("test", 0.5, [0.25, 0.75, 0.375, 0.625]);
        var report = new Pruner(new CpuBackend()).PruneSequential(model, Calib(model.Config), null, Metrics.Wanda, PruneTarget.Unstructured(0.5), allocation: a);
        Assert.True(report.Valid, report.InvalidReason);
        foreach (var l in report.Layers)
        {
            int block = int.Parse(l.Name.Split('.')[2]);
            var w = model.Blocks[block][LinearKinds.All.Single(k => l.Name.EndsWith(k.HfName()))];
            long rows = w.shape[0], cols = w.shape[1];
            Assert.Equal(rows * (long)Math.Floor(cols * a.BlockSparsity(block)), l.Zeros);   // floor(cols·s) per row, as Wanda
        }
        Assert.Equal(0.5, report.Overall, 12);
        Assert.Throws<ArgumentException>(() => new Pruner(new CpuBackend()).PruneSequential(model, Calib(model.Config), null, Metrics.Magnitude, PruneTarget.Unstructured(0.6), allocation: a));
    }

    [Fact]
    public void ProfilesRoundTripAndAreRefusedForAnotherTargetOrShape()
    {
        string dir = TestCheckpoints.TempDir("owl-profile");
        long[] sizes = [32 * 32, 16 * 32, 16 * 32, 32 * 32, 48 * 32, 48 * 32, 32 * 48];
        var a = SparsityAllocation.PerBlock("owl(m=5,lambda=0.08)", 0.7, [0.62, 0.78, 0.7, 0.7]);
        string path = Path.Combine(dir, "profile.json");
        File.WriteAllText(path, a.ToJson("ab12" + new string('0', 60)));
        var b = SparsityAllocation.Load(path, 4, sizes, 0.7, "AB12" + new string('0', 60));
        Assert.Equal(a.ToString(), b.ToString());
        Assert.Equal("owl(m=5,lambda=0.08)", b.Method);

        Assert.Null(b.OtherModel);
        Assert.Equal("ab12" + new string('0', 60), SparsityAllocation.Load(path, 4, sizes, 0.7, new string('f', 64)).OtherModel);   // said, applied by block
        Assert.Contains("not 0.5", Assert.Throws<PrunerZeroException>(() => SparsityAllocation.Load(path, 4, sizes, 0.5, "ab12" + new string('0', 60))).Message);
        Assert.Contains("has 4 sparsities", Assert.Throws<PrunerZeroException>(() => SparsityAllocation.Load(path, 5, sizes, 0.7, "ab12" + new string('0', 60))).Message);
        File.WriteAllText(path, """{"format": "prunerzero-allocation/1", "target": 0.7, "blocks": [0.7, 0.7, 0.7, 0.8]}""");
        Assert.Contains("overall", Assert.Throws<PrunerZeroException>(() => SparsityAllocation.Load(path, 4, sizes, 0.7, new string('f', 64))).Message);
        File.WriteAllText(path, """{"format": "prunerzero-allocation/1", "target": 0.7, "blocks": [0.7, 0.7, 0.7, "x"]}""");
        Assert.Contains("blocks[3] must be a number", Assert.Throws<PrunerZeroException>(() => SparsityAllocation.Load(path, 4, sizes, 0.7, new string('f', 64))).Message);
    }
}
