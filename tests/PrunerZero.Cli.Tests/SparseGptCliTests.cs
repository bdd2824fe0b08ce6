using System.Text.Json;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>sparsegpt and --update obs through prune and score, and their bad input.</summary>
public class SparseGptCliTests : TorchGuarded
{
    [Fact]
    public void ScoreReportsSparseGptBesideTheMetricsAndTheUpdateChangesKeptWeights()
    {
        var s = PipelineTests.Setup();
        string metrics = Path.Combine(TestCheckpoints.TempDir("metrics"), "lib.txt");
        File.WriteAllLines(metrics, ["magnitude", "sparsegpt"]);
        var (exit, stdout, err) = CliRunner.Run(["score", .. PipelineTests.Common(s), "--metrics", metrics, "--json"]);
        Assert.True(exit == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("metric").GetString()!, r => r);
        Assert.True(rows["sparsegpt"].GetProperty("valid").GetBoolean());
        Assert.Equal(0.5, rows["sparsegpt"].GetProperty("sparsity").GetDouble(), 2);   // per block, not exactly per row
        Assert.True(rows["W"].GetProperty("valid").GetBoolean());

        var (exit2, stdout2, err2) = CliRunner.Run(["score", .. PipelineTests.Common(s), "--metrics", metrics, "--json", "--update", "obs"]);
        Assert.True(exit2 == 0, err2);
        using var doc2 = JsonDocument.Parse(stdout2);
        var rows2 = doc2.RootElement.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("metric").GetString()!, r => r);
        Assert.Equal(0.5, rows2["W + obs"].GetProperty("sparsity").GetDouble(), 3);
        Assert.NotEqual(rows["W"].GetProperty("perplexity").GetDouble(), rows2["W + obs"].GetProperty("perplexity").GetDouble());
        Assert.Equal(rows["sparsegpt"].GetProperty("perplexity").GetDouble(), rows2["sparsegpt"].GetProperty("perplexity").GetDouble(), 6);
    }

    [Fact]
    public void PruneWithTheUpdateKeepsTheMetricsMask()
    {
        var s = PipelineTests.Setup();
        string a = Path.Combine(TestCheckpoints.TempDir("out"), "plain"), b = Path.Combine(TestCheckpoints.TempDir("out"), "obs");
        var (e1, _, err1) = CliRunner.Run(["prune", .. PipelineTests.PruneCommon(s), "--metric", "wanda", "--nm", "2:4", "--out", a]);
        Assert.True(e1 == 0, err1);
        var (e2, out2, err2) = CliRunner.Run(["prune", .. PipelineTests.PruneCommon(s), "--metric", "wanda", "--nm", "2:4", "--update", "obs", "--out", b, "--json"]);
        Assert.True(e2 == 0, err2);
        Assert.Equal(0.5, JsonDocument.Parse(out2).RootElement.GetProperty("sparsity").GetDouble(), 6);
        using var ma = Runtime.Checkpoint.Load(a);
        using var mb = Runtime.Checkpoint.Load(b);
        var wa = TestCheckpoints.Floats(ma.Blocks[0].Q);
        var wb = TestCheckpoints.Floats(mb.Blocks[0].Q);
        // Block 0 sees the same dense inputs in both runs, so the masks are the same; the kept weights moved.
        for (int i = 0; i < wa.Length; i++) Assert.Equal(wa[i] == 0, wb[i] == 0);
        Assert.Contains(Enumerable.Range(0, wa.Length), i => wa[i] != 0 && Math.Abs(wa[i] - wb[i]) > 1e-4f);
    }


    [Fact]
    public void BadInputIsOneClearLineAndNothingIsWritten()
    {
        var s = PipelineTests.Setup();
        string outDir = Path.Combine(TestCheckpoints.TempDir("out"), "never");
        CliRunner.UserError("--update must be none or obs", ["prune", .. PipelineTests.PruneCommon(s), "--metric", "sparsegpt", "--update", "lbfgs", "--out", outDir]);
        // hidden 32, intermediate 48: 2:5 fits no linear; refused before any block is pruned
        CliRunner.UserError("--nm 2:5: groups of 5 must divide", ["prune", .. PipelineTests.PruneCommon(s), "--metric", "sparsegpt", "--nm", "2:5", "--out", outDir]);
        // bench times the one-shot fitness, which has no weight update: it has no --update option at all.
        var (bx, _, berr) = CliRunner.Run(["bench", .. PipelineTests.Common(s), "--update", "obs", "--repeat", "1"]);
        Assert.Equal(2, bx);
        Assert.Contains("'update'", berr);
        Assert.False(Directory.Exists(outDir));
    }
}
