using System.Text.Json;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>The pruning verbs end to end on a tiny random checkpoint, tiny text and a private gradient cache.</summary>
public class PipelineTests : TorchGuarded
{
    static readonly string Text = string.Concat(Enumerable.Range(0, 60).Select(i => $" = Section {i} = \n \n The {i} quick brown foxes jump over {i * 7} lazy dogs . \n"));

    internal static (string Model, string Wiki, string Calib, string Cache) Setup()
    {
        string model = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 17);
        string dir = TestCheckpoints.TempDir("pipeline");
        string wiki = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(wiki, Text);
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, Text.Replace("quick", "slow"));
        return (model, wiki, calib, Path.Combine(dir, "cache"));
    }

    internal static string[] Common((string Model, string Wiki, string Calib, string Cache) s) =>
        ["--model", s.Model, "--dataset", s.Wiki, "--calib", s.Calib, "--cache", s.Cache, "--nsamples", "4", "--seqlen", "32", "--calib-sampling", "stride"];

    /// <summary>Common without --dataset, for `prune` without --eval (which refuses a --dataset it would not read).</summary>
    internal static string[] PruneCommon((string Model, string Wiki, string Calib, string Cache) s) => [.. Common(s).Where((_, i) => i is not (2 or 3))];

    [Fact]
    public void PruneSavesAModelThatEvalLoads()
    {
        var s = Setup();
        string outDir = Path.Combine(TestCheckpoints.TempDir("out"), "pruned");
        var (exit, stdout, err) = CliRunner.Run(["prune", .. Common(s), "--metric", "pruner-zero", "--nm", "2:4", "--out", outDir, "--eval", "--json"]);
        Assert.True(exit == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(0.5, doc.RootElement.GetProperty("sparsity").GetDouble(), 6);
        double ppl = doc.RootElement.GetProperty("perplexity").GetDouble();
        Assert.Contains("sparsity 0.5000", err);

        var (exit2, stdout2, err2) = CliRunner.Run("eval", "--model", outDir, "--dataset", s.Wiki, "--seqlen", "32", "--json");
        Assert.True(exit2 == 0, err2);
        using var doc2 = JsonDocument.Parse(stdout2);
        Assert.Equal(ppl, doc2.RootElement.GetProperty("perplexity").GetDouble(), 1e-4 * ppl);
    }

    [Fact]
    public void ScoreReportsInvalidLinesWithoutAborting()
    {
        var s = Setup();
        string metrics = Path.Combine(TestCheckpoints.TempDir("metrics"), "lib.txt");
        File.WriteAllLines(metrics, ["# library", "magnitude", "wanda  # Wanda", "mul(W,", "sub(W, W)", "pruner-zero"]);
        string csv = metrics + ".csv";
        var (exit, stdout, err) = CliRunner.Run(["score", .. Common(s), "--metrics", metrics, "--json", "--csv", csv]);
        Assert.True(exit == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(5, rows.Count);
        Assert.Equal(3, rows.Count(r => r.GetProperty("valid").GetBoolean()));
        var valid = rows.Where(r => r.GetProperty("valid").GetBoolean()).Select(r => r.GetProperty("perplexity").GetDouble()).ToList();
        Assert.Equal(valid.Order(), valid);   // sorted by perplexity
        Assert.Equal(6, File.ReadAllLines(csv).Length);
    }

    [Fact]
    public void SearchRunsAndResumesWithoutReevaluating()
    {
        var s = Setup();
        string run = TestCheckpoints.TempDir("search");
        string[] args = ["search", .. Common(s), "--run", run, "--population", "4", "--iterations", "4", "--screen-windows", "2", "--report-top", "2", "--seed", "3"];
        var (exit, stdout, err) = CliRunner.Run(args);
        Assert.True(exit == 0, err);
        string best = File.ReadAllText(Path.Combine(run, "best.txt")).Trim();
        // best.txt is a canonical expression (it prints back to itself) and is the best the report names.
        Assert.Equal(best, Kernels.Metrics.Resolve(best).ToString());
        Assert.Contains($"best: {best}  (full perplexity ", stdout);
        Assert.True(File.Exists(Path.Combine(run, "fitness.png")));
        Assert.Contains("magnitude", stdout);

        var (exit2, stdout2, err2) = CliRunner.Run([.. args, "--resume"]);
        Assert.True(exit2 == 0, err2);
        Assert.Contains("(this process 0)", stdout2);
        Assert.Equal(best, File.ReadAllText(Path.Combine(run, "best.txt")).Trim());
    }
}
