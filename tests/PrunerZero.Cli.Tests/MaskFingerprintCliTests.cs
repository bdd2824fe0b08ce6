// Mask fingerprints on a real (tiny) model: `search` counts same-mask candidates, stores them with their source and
// reports distinct leaders. (PruningFitness's own fingerprints: tests/PrunerZero.Workflows.Tests/PruningFitnessTests.cs.)
using Microsoft.Data.Sqlite;
using PrunerZero.Kernels;
using PrunerZero.Runtime.Pruning;
using PrunerZero.Runtime.Tests;
using PrunerZero.Search;

namespace PrunerZero.Cli.Tests;

public class MaskFingerprintCliTests : TorchGuarded
{
    [Fact]
    public void Search_reports_same_mask_duplicates_with_distinct_leaders_and_resumes_equal()
    {
        var s = PipelineTests.Setup();
        string run = TestCheckpoints.TempDir("search-fp");
        string[] args = ["search", .. PipelineTests.Common(s), "--run", run, "--population", "8", "--iterations", "24",
                         "--screen-windows", "2", "--report-top", "4", "--seed", "1"];
        var (exit, stdout, err) = CliRunner.Run(args);
        Assert.True(exit == 0, err);
        var rows = new List<(string Canonical, string? Fp, long? SameAs, double? Full)>();
        using (var db = new SqliteConnection($"Data Source={Path.Combine(run, RunStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "SELECT canonical, mask_fingerprint, same_mask_as, full_ppl FROM evaluations ORDER BY id";
            using var r = cmd.ExecuteReader();
            while (r.Read()) rows.Add((r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetInt64(2), r.IsDBNull(3) ? null : r.GetDouble(3)));
        }
        int same = rows.Count(x => x.SameAs is not null);
        Assert.True(same > 0, "a 24-iteration search on the tiny model makes same-mask candidates");
        Assert.Contains($"same mask {same}", stdout);
        Assert.Contains($"Same mask: {same} of {rows.Count} candidates", File.ReadAllText(Path.Combine(run, "report.md")));
        // Leaders (the rows re-checked on the full split) are distinct masks; copies are never re-checked.
        var leaders = rows.Where(x => x.Full is not null).ToList();
        Assert.Equal(4, leaders.Count);
        Assert.Equal(4, leaders.Select(x => x.Fp).Distinct().Count());
        Assert.All(leaders, x => Assert.Null(x.SameAs));

        var (exit2, stdout2, err2) = CliRunner.Run([.. args, "--resume"]);
        Assert.True(exit2 == 0, err2);
        Assert.Contains("(this process 0)", stdout2);
        Assert.Contains($"same mask {same}", stdout2);
        Assert.Equal(stdout.Split('\n').Where(l => l.StartsWith("best:")), stdout2.Split('\n').Where(l => l.StartsWith("best:")));
    }
}
