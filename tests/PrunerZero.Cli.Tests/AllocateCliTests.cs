// `allocate` end to end on a tiny model: a profile whose overall sparsity is the target, a resumed run that ends where
// an uninterrupted one does, and the profile read back by `prune --allocation FILE` (refused for another target).
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

public class AllocateCliTests : TorchGuarded
{
    static string[] Args((string Model, string Wiki, string Calib, string Cache) s, string run, int generations) =>
        ["allocate", .. PipelineTests.PruneCommon(s), "--run", run, "--metric", "wanda", "--sparsity", "0.7",
         "--generations", generations.ToString(), "--offspring", "3", "--stages", "1x2,2x1", "--seed", "2"];

    static string Profile(string run) => File.ReadAllText(Path.Combine(run, "allocation.json"));

    /// <summary>history.csv without the evaluation counts (a resumed process re-measures the parent once).</summary>
    static IEnumerable<string> Decisions(string run) =>
        File.ReadAllLines(Path.Combine(run, "history.csv")).Select(l => l.Split(',')).Select(c => $"{c[0]},{c[1]},{c[4]}");

    [Fact]
    public void A_profile_meets_the_target_resumes_equal_and_prunes()
    {
        var s = PipelineTests.Setup();
        string straight = TestCheckpoints.TempDir("alloc-a"), resumed = TestCheckpoints.TempDir("alloc-b");
        var (exit, stdout, err) = CliRunner.Run(Args(s, straight, 4));
        Assert.True(exit == 0, err);
        Assert.Contains("allocate ", stdout);
        foreach (var f in new[] { "allocation.json", "history.csv", "report.md", "allocation.png" }) Assert.True(File.Exists(Path.Combine(straight, f)), f);
        var blocks = System.Text.Json.Nodes.JsonNode.Parse(Profile(straight))!["blocks"]!.AsArray().Select(v => (double)v!).ToList();
        Assert.Equal(0.7, blocks.Average(), 9);

        Assert.Equal(0, CliRunner.Run(Args(s, resumed, 2)).Exit);
        var (exit2, _, err2) = CliRunner.Run([.. Args(s, resumed, 4), "--resume"]);
        Assert.True(exit2 == 0, err2);
        Assert.Equal(Profile(straight), Profile(resumed));
        Assert.Equal(Decisions(straight), Decisions(resumed));
        Assert.Equal(1, CliRunner.Run(Args(s, resumed, 4)).Exit);   // a run is there: only --resume continues it

        string file = Path.Combine(straight, "allocation.json");
        var (pe, pout, perr) = CliRunner.Run(["prune", .. PipelineTests.PruneCommon(s), "--metric", "wanda", "--sparsity", "0.7",
            "--allocation", file, "--out", Path.Combine(TestCheckpoints.TempDir("alloc-prune"), "m")]);
        Assert.True(pe == 0, perr);
        Assert.Contains("allocation=file(sha256=", pout);
        Assert.Contains("overall sparsity 0.6", perr);
        var (re, _, rerr) = CliRunner.Run(["prune", .. PipelineTests.PruneCommon(s), "--metric", "wanda", "--sparsity", "0.5",
            "--allocation", file, "--out", Path.Combine(TestCheckpoints.TempDir("alloc-prune"), "m")]);
        Assert.Equal(1, re);
        Assert.Contains("the profile is for sparsity 0.7, not 0.5", rerr);
    }
}
