using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>The `stats` numbers against closed forms and plain C# computations.</summary>
public class OutlierStatsTests : TorchGuarded
{
    /// <summary>Excess kurtosis written as n·Σd⁴ / (Σd²)² − 3 (not the code's moment loop).</summary>
    static double PlainKurtosis(double[] v)
    {
        double mean = v.Sum() / v.Length;
        double s2 = v.Sum(x => Math.Pow(x - mean, 2)), s4 = v.Sum(x => Math.Pow(x - mean, 4));
        return v.Length * s4 / (s2 * s2) - 3;
    }

    static double PlainMedian(double[] v)
    {
        var s = (double[])v.Clone();
        Array.Sort(s);
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>
    /// One heavy channel: n − 1 channel norms 1 and one norm a. Then max/median of scaler_row = a², the share is
    /// a² / (n − 1 + a²), and with p = 1/n the kurtosis of the norms is ((1 − p)³ + p³) / (p(1 − p)), whatever a is.
    /// </summary>
    [Theory]
    [InlineData(32, 8.0, 5)]
    [InlineData(33, 3.0, 0)]
    [InlineData(4096, 50.0, 4095)]
    public void OneHeavyChannelHasTheClosedFormProfile(int n, double a, int heavy)
    {
        var s = Enumerable.Repeat(1f, n).ToArray();
        s[heavy] = (float)(a * a);
        var p = OutlierStats.Profile(LinearKind.Down, s, top: 3);
        double q = 1.0 / n;
        Assert.Equal(a * a, p.MaxOverMedian, 1e-9 * a * a);
        Assert.Equal(((1 - q) * (1 - q) * (1 - q) + q * q * q) / (q * (1 - q)) - 3, p.ExcessKurtosis, 1e-6);
        Assert.Equal(heavy, p.Top[0].Channel);
        Assert.Equal(a * a / (n - 1 + a * a), p.Top[0].Share, 1e-9);
        // The rest tie at 1: the lowest channels other than the heavy one, each 1 / (n − 1 + a²).
        Assert.Equal(Enumerable.Range(0, n).Where(j => j != heavy).Take(2), p.Top.Skip(1).Select(t => t.Channel));
        Assert.Equal(1 / (n - 1 + a * a), p.Top[1].Share, 1e-9);
        Assert.Equal(n, p.Columns);
    }

    [Fact]
    public void KnownKurtosesAndMedians()
    {
        // Two equal masses at ±1: m4 / m2² = 1, excess −2. Even count: the median is the mean of the middle two.
        Assert.Equal(-2, OutlierStats.ExcessKurtosis([-1, 1, -1, 1]), 12);
        Assert.Equal(2.5, OutlierStats.Median([4, 1, 2, 3]));
        Assert.Equal(3, OutlierStats.Median([5, 3, 1]));
        Assert.True(double.IsNaN(OutlierStats.ExcessKurtosis([2, 2, 2])));   // m2 = 0: undefined, not 0
        var rng = new Random(3);
        var v = Enumerable.Range(0, 101).Select(_ => rng.NextDouble() * 10).ToArray();
        Assert.Equal(PlainKurtosis(v), OutlierStats.ExcessKurtosis(v), 1e-9);
        Assert.Equal(PlainMedian(v), OutlierStats.Median(v));
    }

    /// <summary>
    /// A hand-built model: token 1 embeds as ones with channel 5 at 8; token 2 (at position 0 of every window) as 0.5
    /// with channel 9 at 100. o_proj and down_proj are zero, so every block's output is its input (the embeddings), and
    /// every block's X is known in plain C#: RMSNorm of the embeddings for q/k/v and gate/up, silu(gate·x)·(up·x) for down.
    /// </summary>
    [Fact]
    public void HandBuiltModelWithAHeavyChannel()
    {
        using var testScope = NewDisposeScope();
        using var model = Checkpoint.Load(TestCheckpoints.Write(TestCheckpoints.Config(), seed: 5));
        var cfg = model.Config;
        int c = cfg.HiddenSize, f = cfg.IntermediateSize, t = 16, n = 3;
        var e1 = Enumerable.Repeat(1.0, c).ToArray();
        e1[5] = 8;
        var e2 = Enumerable.Repeat(0.5, c).ToArray();
        e2[9] = 100;
        using (no_grad())
        {
            model.Embed[1].copy_(tensor(e1.Select(x => (float)x).ToArray()));
            model.Embed[2].copy_(tensor(e2.Select(x => (float)x).ToArray()));
            foreach (var b in model.Blocks)
            {
                b.O.zero_();
                b.Down.zero_();
                b.InputNorm.FillInPlace(1);
                b.PostNorm.FillInPlace(1);
            }
        }
        var windows = Enumerable.Range(0, n).Select(_ => new long[] { 2 }.Concat(Enumerable.Repeat(1L, t - 1)).ToArray()).ToArray();
        var calib = new CalibrationSet("hand-built", CalibSampling.Stride, 0, t, windows);

        var report = OutlierStats.Compute(model, calib, top: 2);

        double[] Norm(double[] e) { double r = 1 / Math.Sqrt(e.Average(x => x * x) + cfg.RmsNormEps); return e.Select(x => x * r).ToArray(); }
        var x1 = Norm(e1);
        var x2 = Norm(e2);
        // Per window: position 0 is token 2, the other t − 1 positions token 1; scaler_row = Σ over windows / n = one window's sum.
        var sQ = Enumerable.Range(0, c).Select(j => x2[j] * x2[j] + (t - 1) * x1[j] * x1[j]).ToArray();
        double[] Act(LlamaBlock b, double[] x)
        {
            var g = TestCheckpoints.Floats(b.Gate);
            var u = TestCheckpoints.Floats(b.Up);
            return Enumerable.Range(0, f).Select(i =>
            {
                double gi = 0, ui = 0;
                for (int j = 0; j < c; j++) { gi += g[i * c + j] * x[j]; ui += u[i * c + j] * x[j]; }
                return gi / (1 + Math.Exp(-gi)) * ui;
            }).ToArray();
        }

        Assert.Equal(cfg.NumLayers, report.Blocks.Count);
        foreach (var block in report.Blocks)
        {
            var a1 = Act(model.Blocks[block.Layer], x1);
            var a2 = Act(model.Blocks[block.Layer], x2);
            var sDown = Enumerable.Range(0, f).Select(i => a2[i] * a2[i] + (t - 1) * a1[i] * a1[i]).ToArray();
            foreach (var (kind, s) in new[] { (LinearKind.Q, sQ), (LinearKind.V, sQ), (LinearKind.Gate, sQ), (LinearKind.Up, sQ), (LinearKind.Down, sDown) })
            {
                var p = block.Linears.Single(l => l.Kind == kind);
                double max = s.Max(), med = PlainMedian(s);
                Assert.Equal(s.Length, p.Columns);
                Assert.Equal(max / med, p.MaxOverMedian, 1e-4 * max / med);
                Assert.Equal(PlainKurtosis(s.Select(Math.Sqrt).ToArray()), p.ExcessKurtosis, 1e-3);
                int argmax = Array.IndexOf(s, max);
                Assert.Equal(argmax, p.Top[0].Channel);
                Assert.Equal(max / s.Sum(), p.Top[0].Share, 1e-5);
            }
            // Channel 9 carries the position-0 token (x2[9]² ≈ 32, plus 15 · 0.34); channel 5 the other 15 positions (15 · x1[5]² ≈ 323): 5 leads.
            Assert.Equal(5, block.Linears[0].Top[0].Channel);
            Assert.Equal(9, block.Linears[0].Top[1].Channel);

            double n1 = Math.Sqrt(e1.Sum(x => x * x)), n2 = Math.Sqrt(e2.Sum(x => x * x));
            Assert.Equal(n2, block.Output.FirstNorm, 1e-4 * n2);
            Assert.Equal(n1, block.Output.OtherMedianNorm, 1e-4 * n1);
            Assert.Equal(n2 / n1, block.Output.Ratio, 1e-4 * n2 / n1);
            Assert.Equal(100, block.Output.MaxAbs, 1e-4);
            Assert.Equal(9, block.Output.MaxAbsChannel);
            Assert.Equal(0, block.Output.MaxAbsPosition);
        }
    }
}
