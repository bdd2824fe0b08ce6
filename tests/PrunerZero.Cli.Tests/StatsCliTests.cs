using System.Text.Json;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>`stats` end to end on a tiny model: the JSON's fields, and block 0's q numbers against a plain computation.</summary>
public class StatsCliTests : TorchGuarded
{
    [Fact]
    public void StatsJsonHasEveryBlockAndLinearAndTheRightNumbers()
    {
        var s = PipelineTests.Setup();
        string csv = Path.Combine(TestCheckpoints.TempDir("stats"), "stats.csv");
        var (exit, stdout, err) = CliRunner.Run("stats", "--model", s.Model, "--calib", s.Calib, "--nsamples", "4", "--seqlen", "32",
                                                "--calib-sampling", "stride", "--top", "3", "--json", "--csv", csv);
        Assert.True(exit == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal(s.Model, root.GetProperty("model").GetString());
        Assert.Equal(s.Calib, root.GetProperty("data").GetString());
        Assert.Equal(4, root.GetProperty("nsamples").GetInt32());
        Assert.Equal(32, root.GetProperty("seqlen").GetInt32());
        Assert.Contains("m4 / m2^2 - 3", root.GetProperty("definitions").GetProperty("excess_kurtosis").GetString());
        var blocks = root.GetProperty("blocks").EnumerateArray().ToList();
        Assert.Equal(2, blocks.Count);
        foreach (var b in blocks)
        {
            var linears = b.GetProperty("linears").EnumerateArray().ToList();
            Assert.Equal(["q", "k", "v", "o", "gate", "up", "down"], linears.Select(l => l.GetProperty("name").GetString()));
            Assert.Equal([32, 32, 32, 32, 32, 32, 48], linears.Select(l => l.GetProperty("columns").GetInt32()));
            foreach (var l in linears)
            {
                double max = l.GetProperty("scaler_max").GetDouble(), med = l.GetProperty("scaler_median").GetDouble();
                Assert.Equal(max / med, l.GetProperty("max_over_median").GetDouble(), 1e-9 * max / med);
                var top = l.GetProperty("top").EnumerateArray().ToList();
                Assert.Equal(3, top.Count);
                var shares = top.Select(t => t.GetProperty("share").GetDouble()).ToList();
                Assert.Equal(shares.OrderDescending(), shares);
                Assert.InRange(shares.Sum(), 0, 1);
            }
            // q, k and v read one input: one profile.
            Assert.Equal(linears[0].GetProperty("excess_kurtosis").GetDouble(), linears[2].GetProperty("excess_kurtosis").GetDouble());
            double first = b.GetProperty("first_token_norm").GetDouble(), other = b.GetProperty("other_median_norm").GetDouble();
            Assert.Equal(first / other, b.GetProperty("first_token_ratio").GetDouble(), 1e-9 * first / other);
            Assert.InRange(b.GetProperty("max_abs_channel").GetInt32(), 0, 31);
            Assert.InRange(b.GetProperty("max_abs_position").GetInt32(), 0, 31);
        }
        var lines = File.ReadAllLines(csv);
        Assert.Equal(1 + 2 * 7, lines.Length);
        Assert.StartsWith("model,data,nsamples,seqlen,layer,linear,", lines[0]);

        // Block 0's q in plain C#: X = Σ over windows and tokens of (RMSNorm(embedding) · input_norm)² / nsamples.
        using var model = Checkpoint.Load(s.Model);
        var calib = CalibrationSet.Build(s.Calib, TextTokenizer.Load(s.Model, model.Config), 4, 32, CalibSampling.Stride, 0);
        int c = model.Config.HiddenSize;
        var embed = TestCheckpoints.Floats(model.Embed);
        var norm = TestCheckpoints.Floats(model.Blocks[0].InputNorm);
        var sq = new double[c];
        foreach (var w in calib.Windows)
            foreach (var id in w)
            {
                var row = Enumerable.Range(0, c).Select(j => (double)embed[id * c + j]).ToArray();
                double r = 1 / Math.Sqrt(row.Average(v => v * v) + model.Config.RmsNormEps);
                for (int j = 0; j < c; j++) sq[j] += Math.Pow(row[j] * r * norm[j], 2) / calib.NSamples;
            }
        var sorted = sq.Order().ToArray();
        double median = (sorted[c / 2 - 1] + sorted[c / 2]) / 2;
        var nrm = sq.Select(Math.Sqrt).ToArray();
        double mean = nrm.Average();
        double kurt = nrm.Length * nrm.Sum(x => Math.Pow(x - mean, 4)) / Math.Pow(nrm.Sum(x => Math.Pow(x - mean, 2)), 2) - 3;
        var q0 = blocks[0].GetProperty("linears")[0];
        Assert.Equal(sq.Max() / median, q0.GetProperty("max_over_median").GetDouble(), 1e-4 * sq.Max() / median);
        Assert.Equal(kurt, q0.GetProperty("excess_kurtosis").GetDouble(), 1e-3);
        Assert.Equal(Array.IndexOf(sq, sq.Max()), q0.GetProperty("top")[0].GetProperty("channel").GetInt32());
    }

    [Fact]
    public void StatsTextNamesModelDataNsamplesSeqlenOnEveryTable()
    {
        var s = PipelineTests.Setup();
        var (exit, stdout, err) = CliRunner.Run("stats", "--model", s.Model, "--calib", s.Calib, "--nsamples", "2", "--seqlen", "16", "--calib-sampling", "stride");
        Assert.True(exit == 0, err);
        var heads = stdout.Split('\n').Where(l => l.Contains("model=")).ToList();
        Assert.Equal(2, heads.Count);
        Assert.All(heads, h => Assert.Contains($"model={s.Model} data=calib.txt nsamples=2 seqlen=16", h));
    }

    [Fact]
    public void StatsRefusesBadFlagsInOneLine()
    {
        var s = PipelineTests.Setup();
        CliRunner.UserError("--top must be at least 1", "stats", "--model", s.Model, "--calib", s.Calib, "--top", "0");
        CliRunner.UserError("--seqlen 65 exceeds", "stats", "--model", s.Model, "--calib", s.Calib, "--seqlen", "65");
        CliRunner.UserError("--calib-sampling must be random or stride", "stats", "--model", s.Model, "--calib", s.Calib, "--calib-sampling", "every");
    }

    [Fact]
    public void AFullDiskIsOneLineUserErrorNotAnInternalFailure()
    {
        // /dev/full accepts the open and fails every write with ENOSPC: the CSV write at the end meets a full disk.
        if (!File.Exists("/dev/full")) return;   // Linux only; the check below is what runs in CI
        var s = PipelineTests.Setup();
        CliRunner.UserError("the disk is full", "stats", "--model", s.Model, "--calib", s.Calib, "--nsamples", "2", "--seqlen", "16", "--csv", "/dev/full");
    }
}
