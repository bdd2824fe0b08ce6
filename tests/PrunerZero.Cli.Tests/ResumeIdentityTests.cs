// The run identity holds no path: a search resumes after its model folder moved (same content), and a run whose
// store holds the previous version's protocol ("model=DIR " in front) resumes too, without evaluating again.
using Microsoft.Data.Sqlite;
using PrunerZero.Runtime.Tests;
using PrunerZero.Search;

namespace PrunerZero.Cli.Tests;

public class ResumeIdentityTests : TorchGuarded
{
    [Fact]
    public void A_run_resumes_after_its_model_moved_and_from_the_previous_versions_stored_protocol()
    {
        var s = PipelineTests.Setup();
        string run = TestCheckpoints.TempDir("resume-moved");
        string[] search = ["--run", run, "--population", "4", "--iterations", "3", "--screen-windows", "2", "--report-top", "2", "--seed", "5"];
        var (exit, stdout, err) = CliRunner.Run(["search", .. PipelineTests.Common(s), .. search]);
        Assert.True(exit == 0, err);
        Assert.DoesNotContain(s.Model, stdout.Split('\n')[0]);   // the protocol line names no folder

        // The store as the previous version wrote it: the model folder in front of the fitness protocol.
        string db = Path.Combine(run, RunStore.FileName);
        string stored;
        using (var c = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            c.Open();
            using var get = c.CreateCommand();
            get.CommandText = "SELECT value FROM params WHERE key = 'fitness_protocol'";
            stored = (string)get.ExecuteScalar()!;
            using var set = c.CreateCommand();
            set.CommandText = "UPDATE params SET value = $v WHERE key = 'fitness_protocol'";
            set.Parameters.AddWithValue("$v", $"model={s.Model} {stored}");
            set.ExecuteNonQuery();
        }

        // The model moved: same content, another folder.
        string moved = Path.Combine(TestCheckpoints.TempDir("moved"), "model");
        Directory.Move(s.Model, moved);
        var common = PipelineTests.Common(s).Select(a => a == s.Model ? moved : a).ToArray();
        var (exit2, stdout2, err2) = CliRunner.Run(["search", .. common, .. search, "--resume"]);
        Assert.True(exit2 == 0, err2);
        Assert.Contains("(this process 0)", stdout2);
        Assert.Equal(stdout.Split('\n').Where(l => l.StartsWith("best:")), stdout2.Split('\n').Where(l => l.StartsWith("best:")));
        using (var c = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            c.Open();
            using var get = c.CreateCommand();
            get.CommandText = "SELECT value FROM params WHERE key = 'fitness_protocol'";
            Assert.Equal(stored, (string)get.ExecuteScalar()!);   // stored again in today's form
        }

        // Other content under the old name is still refused.
        var other = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 18);
        var (exit3, _, err3) = CliRunner.Run(["search", .. common.Select(a => a == moved ? other : a), .. search, "--resume"]);
        Assert.Equal(1, exit3);
        Assert.Contains("input.model_sha256", err3);
    }
}
